"""What the Docker target's runtime scenarios share (test_docker_runtime.py, test_docker_runtime_ports.py):
the lab images, a target per dockerd host of tests/fixtures/docker_peer.py with an env_from resolver,
the clean-up of what a module's apps left, plans, and the facts check.

With STELLA_RECORD_DOCKER_FACTS=DIR the raw Engine API answers seen by check_facts are written to DIR
as facts fixtures (tests/unit/targets/docker/fixtures/), the expectation being what the test knows.
The fixtures `images`, `targets` and `cleanup` are imported into each test module as
`*_fixture` (pytest finds them there under their `name=`).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stella_operators.deploy import run_deployment
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, HealthCheck, TargetPlan, VersionSticker
from stella_operators.targets.docker.facts import gather, parse_facts
from stella_operators.targets.docker.target import DockerTarget
from stella_operators.targets.runtime import EnvFrom

HEALTH = HealthCheck(command=["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                     interval_s=0.5, timeout_s=2.0, retries=2)
SECRET = "pw-from-airflow-9f3a1c"
PORT = 18080


@pytest.fixture(scope="module", name="images")
def images_fixture(lab_web_image) -> dict[str, str]:
    return {
        "v1": lab_web_image("stella/portal", "v1", version="1.0.0"),
        "v2": lab_web_image("stella/portal", "v2", version="2.0.0"),
        "bad": lab_web_image("stella/portal", "v3-broken", version="3.0.0", healthy=False),
    }


def resolver(ref: EnvFrom) -> str:
    """Stands in for hooks/env_from.py (tested on its own against airflow.sdk): same contract."""
    if ref.connection == "shop_db" and ref.field == "password":
        return SECRET
    raise LookupError(f"{ref.describe()} is not defined")


@pytest.fixture(name="targets")
def targets_fixture(docker_hosts, docker_clients) -> list[DockerTarget]:
    return [DockerTarget(h.name, c, pull_timeout_s=60, stop_timeout_s=1, resolve_env=resolver)
            for h, c in zip(docker_hosts, docker_clients, strict=True)]


@pytest.fixture(scope="module", name="cleanup")
def cleanup_fixture(docker_hosts):
    """Remove what the module's apps left on the session's hosts (containers, networks, volumes)."""
    import docker

    apps, networks, volumes = set(), set(), set()
    yield apps, networks, volumes
    for h in docker_hosts:
        client = docker.APIClient(base_url=h.engine_url, timeout=60)
        for app in apps:
            for c in client.containers(all=True, filters={"label": f"stella.app={app}"}):
                client.remove_container(c["Id"], force=True)
        for n in networks:
            for found in client.networks(names=[n]):
                client.remove_network(found["Id"])
        for v in volumes:
            try:
                client.remove_volume(v, force=True)
            except docker.errors.NotFound:
                pass
        client.close()


def spec(registry, digest: str, name: str = "web", repository: str = "stella/portal", **fields) -> ComponentSpec:
    comp = ComponentDigest(name=name, repository=f"{registry.host_port}/{repository}", digest=digest)
    fields.setdefault("health", HEALTH if fields.get("role") not in ("migration", "init") else None)
    return ComponentSpec(component=comp, **fields)


def plan(target: DockerTarget, app: str, specs: list[ComponentSpec], deployment: str,
         health_timeout_s: float = 30) -> TargetPlan:
    comps = [s.component for s in specs]
    sticker = VersionSticker(
        app=app, release_id=f"rel-{deployment}", release_name=deployment,
        content_hash="sha256:" + hashlib.sha256(json.dumps([c.digest for c in comps]).encode()).hexdigest(),
        components=comps, deployment_id=deployment, promotion_id=f"promo-{deployment}", environment="it",
        target=target.name, strategy="all_at_once", deployed_at=datetime.now(UTC).isoformat())
    return TargetPlan(app=app, environment="it", target=target.name, deployment_id=deployment,
                      components=tuple(specs), sticker=sticker, health_timeout_s=health_timeout_s, run_timeout_s=30)


def deploy(targets, app, specs, deployment, **kw):
    pairs = [(t, plan(t, app, specs, deployment, **kw)) for t in targets]
    return run_deployment(pairs, max_parallel=4, timeout_s=120)


def containers(client, app) -> list[dict]:
    return client.containers(all=True, filters={"label": f"stella.app={app}"})


def ids(client, app) -> list[str]:
    return sorted(c["Id"] for c in containers(client, app) if c["State"] == "running")


def run_in(client, cid: str, *cmd: str) -> tuple[int, str]:
    exec_id = client.exec_create(cid, list(cmd))["Id"]
    out = client.exec_start(exec_id).decode()
    return client.exec_inspect(exec_id)["ExitCode"], out


def answer(host, path: str = "/version", port: int = PORT) -> str:
    return httpx.get(f"http://{host.ip}:{port}{path}", timeout=3).text


def check_facts(name: str, target: DockerTarget, app: str, expected: dict[str, tuple[str, bool]]) -> None:
    """The facts the parser reads from the engine's raw answers are what the test knows runs;
    recorded as a unit fixture when asked."""
    obs = gather(target.api, app)
    facts = parse_facts(target.name, app, obs)
    assert {c: (rc.digest, rc.healthy) for c, rc in facts.components.items()} == expected
    out = os.environ.get("STELLA_RECORD_DOCKER_FACTS")
    if out:
        for info in obs.inspected.values():  # env values are not facts; keep them out of fixtures
            info["Config"]["Env"] = [e.split("=", 1)[0] + "=..." for e in info["Config"].get("Env") or []]
        path = Path(out) / "app_facts" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "app": app, "target": target.name,
            "expected": {c: {"digest": d, "healthy": h} for c, (d, h) in expected.items()},
            "sticker_release": facts.sticker.release_name if facts.sticker else None,
            "observation": {"containers": obs.containers, "inspected": obs.inspected, "images": obs.images},
        }, indent=1, sort_keys=True) + "\n")
