"""Estate file validation: every problem named by file, line, field path and fix; no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stella_operators.estate import EstateError, load_estate, parse_estate
from stella_operators.estate.schema import estate_json_schema

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
version: 1
registries: [{host: "reg.local:5000", scheme: http}]
apps:
  - name: shop
    components:
      - {name: web, repository: reg.local:5000/demo/web}
environments:
  - name: dev
    targets: [{name: dev-1, type: docker, connection: c_dev_1}]
  - name: stage
    targets: [{name: stage-1, type: docker, connection: c_stage_1}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(EstateError) as info:
        parse_estate(text, source="estate.yaml")
    return str(info.value).splitlines()


def test_demo_estate_is_valid():
    estate = load_estate(ROOT / "include" / "estate.yaml")
    assert [e.name for e in estate.environments] == ["dev", "stage", "prod"]
    assert estate.upstream("stage") == ["dev"] and estate.upstream("dev") == []
    assert estate.upstream("prod") == ["stage"] and estate.environment("prod").strategy == "canary"


def test_good_estate_parses_and_derives_the_path():
    estate = parse_estate(GOOD)
    assert estate.upstream("stage") == ["dev"]
    assert estate.registry_for("reg.local:5000/demo/web").scheme == "http"


def test_typo_is_an_unknown_key_with_suggestion_line_and_path():
    lines = problems(GOOD.replace("scheme: http", "schem: http"))
    assert lines == ["estate.yaml:3: registries[0].schem: unknown key 'schem'; did you mean 'scheme'? "
                     "(allowed: connection, host, scheme, verify_tls)"]


def test_unsafe_connection_id_names_field_path():
    lines = problems(GOOD.replace("connection: c_stage_1", 'connection: "c;rm -rf /"'))
    assert len(lines) == 1
    assert lines[0].startswith("estate.yaml:12: environments[1].targets[0].connection: 'c;rm -rf /' is not allowed")


def test_unsafe_target_name_says_why():
    lines = problems(GOOD.replace("name: dev-1", 'name: "dev-1$(reboot)"'))
    assert "environments[0].targets[0].name" in lines[0] and "no shell characters" in lines[0]


def test_wrong_type_and_missing_field():
    text = GOOD.replace("targets: [{name: dev-1, type: docker, connection: c_dev_1}]", "targets: 5")
    text = text.replace("{name: web, repository: reg.local:5000/demo/web}", "{name: web}")
    lines = problems(text)
    assert any("apps[0].components[0].repository: required field is missing" in line for line in lines)
    assert any("environments[0].targets:" in line for line in lines)


def test_unknown_references_and_duplicates():
    text = GOOD + """  - name: prod
    requires: [qa]
    targets: [{name: dev-1, type: docker, connection: c}]
"""
    lines = problems(text)
    assert any("environments[2].requires[0]: unknown environment 'qa' (known: dev, stage, prod)" in x for x in lines)
    assert any("environments[2].targets[0].name: duplicate target 'dev-1'" in x for x in lines)


def test_cycle_in_promotion_path():
    text = GOOD.replace("  - name: dev\n", "  - name: dev\n    requires: [stage]\n")
    lines = problems(text)
    assert any("promotion path has a cycle: dev -> stage -> dev" in x or "stage -> dev -> stage" in x for x in lines)


def test_undeclared_registry_and_unknown_target_type():
    text = GOOD.replace("repository: reg.local:5000/demo/web", "repository: other.local/demo/web")
    text = text.replace("type: docker, connection: c_stage_1", "type: dockr, connection: c_stage_1")
    lines = problems(text)
    assert any("apps[0].components[0].repository: registry 'other.local' is not declared" in x for x in lines)
    assert any("environments[1].targets[0].type: unknown target type 'dockr'" in x for x in lines)


def test_invalid_yaml_and_non_mapping():
    assert problems("apps: [\n")[0].startswith("estate.yaml:")
    assert problems("- just a list\n") == [
        "estate.yaml: <root>: the estate must be a mapping with apps and environments"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(EstateError) as info:
        load_estate(tmp_path / "nope.yaml")
    assert "cannot read the estate file" in str(info.value)


def test_cli_validate_exit_codes_and_no_traceback(tmp_path):
    bad = tmp_path / "estate.yaml"
    bad.write_text(GOOD.replace("scheme: http", "scheme: ftp"))
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "validate", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"{bad}:3: registries[0].scheme: 'ftp' is not one of the allowed values" in out.stderr
    ok = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "validate",
                         str(ROOT / "include" / "estate.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_committed_json_schema_is_current():
    committed = json.loads((ROOT / "include" / "schemas" / "estate.schema.json").read_text())
    assert committed == estate_json_schema(), "run: stella schema -o include/schemas/estate.schema.json"


def test_demo_estate_matches_the_demo_lab():
    """scripts/demo starts `python -m devstack up`: the estate must name its hosts, and prod's router
    the HAProxy devstack puts in front of prod (canary_front.py)."""
    from devstack.__main__ import ENVIRONMENTS, FRONT
    from devstack.canary_front import start_front
    from devstack.estate_lab import EstateLab, conn_id_for

    lab = EstateLab(ROOT / ".stella" / "unused", environments=ENVIRONMENTS)
    estate = load_estate(ROOT / "include" / "estate.yaml")
    router = estate.environment("prod").canary.router
    assert router.type == "haproxy"
    assert router.settings == {"socket": str(FRONT / "haproxy" / "admin.sock"),
                               "backend": start_front.__kwdefaults__["backend"]}
    assert [r.host for r in estate.registries] == [lab.registry_host]
    assert estate.app("shop").components[0].repository == lab.repository
    assert {e.name: [(t.name, t.connection) for t in e.targets] for e in estate.environments} == {
        env: [(h, conn_id_for(h)) for h in hosts] for env, hosts in lab.environments.items()}


def test_cached_estate_rereads_only_when_the_file_changes(tmp_path):
    import os

    from stella_operators.estate.loader import cached_estate

    path = tmp_path / "estate.yaml"
    path.write_text(GOOD)
    first = cached_estate(path)
    assert cached_estate(path) is first
    path.write_text(GOOD.replace("name: shop", "name: shop2"))
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    assert cached_estate(path).apps[0].name == "shop2"
    path.write_text("apps: [")
    with pytest.raises(EstateError):
        cached_estate(path)
