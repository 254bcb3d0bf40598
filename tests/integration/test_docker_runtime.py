"""The Docker target's runtime fields against real dockerd hosts (tests/fixtures/docker_peer.py,
10.200.0.10 / .11) and a real registry: published ports answer HTTP from the root namespace and
survive a failed release, named volumes keep data across releases, a failing migration stops the
deployment with the old release still running, env_from secrets reach the container and nothing
else, networks with aliases and resource limits take effect.

With STELLA_RECORD_DOCKER_FACTS=DIR the raw Engine API answers seen here are written to DIR as
facts fixtures (tests/unit/targets/docker/fixtures/), the expectation being what the test knows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stella_operators.deploy import run_deployment
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, DeployError, HealthCheck, TargetPlan, VersionSticker
from stella_operators.targets.docker.facts import gather, parse_facts
from stella_operators.targets.docker.target import DockerTarget
from stella_operators.targets.runtime import EnvFrom

pytestmark = pytest.mark.root

HEALTH = HealthCheck(command=["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                     interval_s=0.5, timeout_s=2.0, retries=2)
SECRET = "pw-from-airflow-9f3a1c"
PORT = 18080


@pytest.fixture(scope="module")
def images(lab_web_image) -> dict[str, str]:
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


@pytest.fixture
def targets(docker_hosts, docker_clients) -> list[DockerTarget]:
    return [DockerTarget(h.name, c, pull_timeout_s=60, stop_timeout_s=1, resolve_env=resolver)
            for h, c in zip(docker_hosts, docker_clients, strict=True)]


@pytest.fixture(scope="module")
def cleanup(docker_hosts):
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


class TestPublishedPort:
    app = "portal"

    def specs(self, registry, digest):
        return [spec(registry, digest, ports=[{"target": 8080, "published": PORT}], restart="on-failure")]

    def test_v1_answers_on_the_published_port_of_every_host(self, targets, docker_hosts, docker_clients, lab_registry,
                                                            images, cleanup):
        cleanup[0].add(self.app)
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["v1"]), "port-1")
        assert outcome.status == "deployed", outcome.error
        for host, client, target in zip(docker_hosts, docker_clients, targets, strict=True):
            assert answer(host) == "1.0.0\n"
            (c,) = containers(client, self.app)  # the probe is gone
            info = client.inspect_container(c["Id"])
            assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": str(PORT)}]}
            assert info["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
            check_facts("published_port_v1", target, self.app, {"web": (images["v1"], True)})

    def test_same_release_again_restarts_nothing(self, targets, docker_clients, lab_registry, images):
        before = [ids(c, self.app) for c in docker_clients]
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["v1"]), "port-1b")
        assert outcome.status == "unchanged", outcome.error
        assert [ids(c, self.app) for c in docker_clients] == before

    def test_v2_takes_over_the_port(self, targets, docker_hosts, docker_clients, lab_registry, images):
        a = targets[0]
        looking = LooksAfterPrepare(a.name, a.api, pull_timeout_s=60, stop_timeout_s=1)
        looking.expected = {"web": (images["v1"], True)}
        outcome = deploy([looking, targets[1]], self.app, self.specs(lab_registry, images["v2"]), "port-2")
        assert outcome.status == "deployed", outcome.error
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert len(containers(client, self.app)) == 1

    def test_unhealthy_release_never_touches_the_port(self, targets, docker_hosts, docker_clients, lab_registry,
                                                      images):
        before = [ids(c, self.app) for c in docker_clients]
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["bad"]), "port-3", health_timeout_s=15)
        assert outcome.status == "rolled_back"
        assert "probe" in outcome.error and ("unhealthy" in outcome.error or "not healthy" in outcome.error)
        assert [ids(c, self.app) for c in docker_clients] == before
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert len(containers(client, self.app)) == 1

    def test_failure_after_the_switch_restores_the_port_on_every_host(self, targets, docker_hosts, docker_clients,
                                                                       lab_registry, images):
        """Host a switches to v1 (old stopped, new bound to the port); host b switches too, then
        its engine 'fails': both must answer v2 again, from the very containers that were stopped."""
        before = [ids(c, self.app) for c in docker_clients]
        a, b = targets
        failing = FailsAfterSwitch(b.name, b.api, pull_timeout_s=60, stop_timeout_s=1)
        failing.expected = {"web": (images["v1"], True)}
        outcome = deploy([a, failing], self.app, self.specs(lab_registry, images["v1"]), "port-4")
        assert outcome.status == "rolled_back", outcome.error
        assert "engine connection lost" in outcome.error
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert client.containers(all=True, filters={"label": "stella.deployment.id=port-4"}) == []
        assert [ids(c, self.app) for c in docker_clients] == before


    def test_changing_only_the_published_port_moves_the_service(self, targets, docker_hosts, docker_clients,
                                                                  lab_registry, images):
        moved = [spec(lab_registry, images["v2"], ports=[{"target": 8080, "published": PORT + 1}],
                      restart="on-failure")]
        outcome = deploy(targets, self.app, moved, "port-5")
        assert outcome.status == "deployed", outcome.error
        assert any("runs with other settings" in line or "started" in line for line in outcome.targets[0].log)
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host, port=PORT + 1) == "2.0.0\n"
            with pytest.raises(httpx.TransportError):
                answer(host)
            assert len(containers(client, self.app)) == 1
        # and again: nothing to do
        assert deploy(targets, self.app, moved, "port-5b").status == "unchanged"


class LooksAfterPrepare(DockerTarget):
    """After prepare the probe runs v2 beside the old v1 and the real v2 container is created but
    not started: the facts (and the port) are still v1."""

    expected: dict[str, tuple[str, bool]]

    def prepare(self, plan):
        prepared = super().prepare(plan)
        assert prepared.switch_at_commit and prepared.started
        check_facts("probe_beside_old", self, plan.app, self.expected)
        assert answer_ip(self) == "1.0.0\n"  # the probe publishes nothing
        return prepared


class FailsAfterSwitch(DockerTarget):
    expected: dict[str, tuple[str, bool]]

    def commit(self, plan, prepared):
        super().commit(plan, prepared)
        assert answer_ip(self) == "1.0.0\n"  # really switched before failing
        check_facts("switched_old_kept_stopped", self, plan.app, self.expected)
        raise DeployError(self.name, "commit failed: engine connection lost")


def answer_ip(target: DockerTarget) -> str:
    ip = target.api.base_url.split("//", 1)[1].split(":", 1)[0]
    return httpx.get(f"http://{ip}:{PORT}/version", timeout=3).text


def test_named_volume_keeps_data_across_a_release_and_bind_mounts_are_read_only(targets, docker_clients, lab_registry,
                                                                               images, cleanup, tmp_path):
    app, volume = "vault", "stella-it-vault-data"
    cleanup[0].add(app)
    cleanup[2].add(volume)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.conf").write_text("mode=it\n")
    target, client = targets[0], docker_clients[0]

    def specs(digest):
        return [spec(lab_registry, digest, volumes=[
            {"source": volume, "target": "/data"},
            {"type": "bind", "source": str(conf), "target": "/conf", "read_only": True}])]

    assert deploy([target], app, specs(images["v1"]), "vol-1").status == "deployed"
    (c1,) = ids(client, app)
    assert run_in(client, c1, "sh", "-c", "echo written-by-v1 > /data/state") == (0, "")
    assert run_in(client, c1, "cat", "/conf/app.conf") == (0, "mode=it\n")
    code, out = run_in(client, c1, "sh", "-c", "echo x > /conf/app.conf")
    assert code != 0 and "Read-only file system" in out
    outcome = deploy([target], app, specs(images["v2"]), "vol-2")
    assert outcome.status == "deployed", outcome.error
    (c2,) = ids(client, app)
    assert c2 != c1
    assert run_in(client, c2, "cat", "/data/state") == (0, "written-by-v1\n")
    assert (conf / "app.conf").read_text() == "mode=it\n"


def test_migration_runs_first_and_a_failing_one_leaves_the_old_release_running(targets, docker_clients, lab_registry,
                                                                               images, cleanup, caplog):
    caplog.set_level(logging.DEBUG)
    app, volume = "books", "stella-it-books-data"
    cleanup[0].add(app)
    cleanup[2].add(volume)
    target, client = targets[0], docker_clients[0]
    data = [{"source": volume, "target": "/data"}]
    ok = ["sh", "-c", "test ! -e /data/web-started || exit 9; echo migrated >> /data/migrations"]
    web_cmd = ["sh", "-c", "touch /data/web-started; exec sh -c \"$0\"", "httpd -f -p 8080 -h /www"]

    def specs(mig_digest, mig_cmd, web_digest):
        return [spec(lab_registry, web_digest, volumes=data, command=web_cmd),
                spec(lab_registry, mig_digest, name="migrate", role="migration", command=mig_cmd, volumes=data,
                     env_from={"DB_PASSWORD": {"connection": "shop_db", "field": "password"}})]

    # 1. the migration runs to completion before web starts (web listed first: order is by role)
    outcome = deploy([target], app, specs(images["v1"], ok, images["v1"]), "mig-1")
    assert outcome.status == "deployed", outcome.error
    mig = [c for c in containers(client, app) if c["Labels"]["stella.component"] == "migrate"]
    assert len(mig) == 1 and mig[0]["State"] == "exited"
    check_facts("migration_completed", target, app, {"web": (images["v1"], True), "migrate": (images["v1"], True)})

    # 2. the same release again: the completed migration is not run again, web not restarted
    before = ids(client, app)
    assert deploy([target], app, specs(images["v1"], ok, images["v1"]), "mig-1b").status == "unchanged"
    assert ids(client, app) == before
    assert run_in(client, before[0], "cat", "/data/migrations") == (0, "migrated\n")

    # 3. release 2's migration fails: nothing switches, web v1 keeps running, the error shows the
    #    migration's last lines with the secret it printed redacted
    bad = ["sh", "-c", "echo applying 0042; echo \"ALTER TABLE failed for password=$DB_PASSWORD\"; exit 3"]
    outcome = deploy([target], app, specs(images["v2"], bad, images["v2"]), "mig-2")
    assert outcome.status == "rolled_back"
    err = outcome.target(target.name).error
    assert "migrate: migration container" in err and "exited with code 3" in err, err
    assert "applying 0042" in err and "ALTER TABLE failed for password=***" in err, err
    assert SECRET not in err and SECRET not in caplog.text
    assert ids(client, app) == before
    assert client.containers(all=True, filters={"label": "stella.deployment.id=mig-2"}) == []
    assert target.facts(app).digests() == {"web": images["v1"], "migrate": images["v1"]}

    # 4. a failed run of the migration beside the completed one stands for nothing
    labels = {"stella.app": app, "stella.component": "migrate", "stella.role": "migration",
              "stella.digest": images["v2"]}
    failed = client.create_container(f"{lab_registry.host_port}/stella/portal@{images['v2']}",
                                     command=["sh", "-c", "exit 4"], labels=labels)["Id"]
    client.start(failed)
    assert client.wait(failed, timeout=20)["StatusCode"] == 4
    check_facts("failed_migration_beside_completed", target, app,
                {"web": (images["v1"], True), "migrate": (images["v1"], True)})


def test_env_from_reaches_the_container_but_no_label_sticker_log_or_outcome(targets, docker_clients, lab_registry,
                                                                           images, cleanup, caplog):
    caplog.set_level(logging.DEBUG)
    app = "secrets"
    cleanup[0].add(app)
    target, client = targets[0], docker_clients[0]
    specs = [spec(lab_registry, images["v1"], env={"APP_ENV": "it"},
                  env_from={"DB_PASSWORD": {"connection": "shop_db", "field": "password"}})]
    outcome = deploy([target], app, specs, "sec-1")
    assert outcome.status == "deployed", outcome.error
    (cid,) = ids(client, app)
    info = client.inspect_container(cid)
    assert f"DB_PASSWORD={SECRET}" in info["Config"]["Env"]
    assert run_in(client, cid, "sh", "-c", "echo $DB_PASSWORD") == (0, SECRET + "\n")
    assert SECRET not in json.dumps(info["Config"]["Labels"])
    sticker = target.read_sticker_file(cid)
    assert SECRET not in sticker.model_dump_json()
    assert SECRET not in json.dumps([t.__dict__ for t in outcome.targets], default=str)
    assert SECRET not in caplog.text
    # a reference that cannot be resolved: the deployment stops, naming the reference
    missing = [spec(lab_registry, images["v2"], env_from={"TOKEN": {"variable": "shop_token"}})]
    outcome = deploy([target], app, missing, "sec-2")
    assert outcome.status == "rolled_back"
    assert "env TOKEN: cannot read Airflow Variable 'shop_token'" in outcome.error
    assert ids(client, app) == [cid]
    # without a resolver (a target built by hand) env_from is refused, not ignored
    bare = DockerTarget(target.name, target.api, pull_timeout_s=60, stop_timeout_s=1)
    outcome = run_deployment([(bare, plan(bare, app, [spec(lab_registry, images["v2"], env_from={
        "DB_PASSWORD": {"connection": "shop_db", "field": "password"}})], "sec-3"))])
    assert outcome.status == "rolled_back" and "env_from needs a resolver" in outcome.error


def test_networks_with_aliases_and_limits(targets, docker_clients, lab_registry, images, cleanup):
    app, front, back = "mesh", "stella-it-front", "stella-it-back"
    cleanup[0].add(app)
    cleanup[1].update({front, back})
    target, client = targets[0], docker_clients[0]
    specs = [
        spec(lab_registry, images["v1"], networks={front: {"aliases": ["shopweb"]}, back: {"aliases": ["webback"]}},
             limits={"memory": "64m", "cpus": 0.5, "pids": 64}),
        spec(lab_registry, images["v1"], name="client", role="sidecar", networks=[back],
             command=["sh", "-c", "exec sleep 3600"], health=None),
    ]
    outcome = deploy([target], app, specs, "net-1")
    assert outcome.status == "deployed", outcome.error
    for net in (front, back):
        (found,) = [n for n in client.networks(names=[net]) if n["Name"] == net]
        assert found["Driver"] == "bridge" and found["Labels"].get("stella.managed") == "true"
    by_comp = {c["Labels"]["stella.component"]: c["Id"] for c in containers(client, app)}
    # the sidecar reaches web by its alias on the second network (connected after create)
    deadline = time.monotonic() + 10
    while True:
        code, out = run_in(client, by_comp["client"], "wget", "-q", "-O", "-", "http://webback:8080/version")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (code, out) == (0, "1.0.0\n")
    # ... and not by the alias it has only on the network the sidecar is not on
    assert run_in(client, by_comp["client"], "wget", "-q", "-T", "2", "-O", "-", "http://shopweb:8080/version")[0] != 0
    hc = client.inspect_container(by_comp["web"])["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 64)
    assert client.inspect_container(by_comp["client"])["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_facts_take_digest_from_the_image_and_health_from_the_engine(targets, docker_clients, lab_registry, images,
                                                                     cleanup):
    """A container whose label claims v2 but runs the v1 image, and whose health check fails."""
    app = "liars"
    cleanup[0].add(app)
    target, client = targets[0], docker_clients[0]
    ref = f"{lab_registry.host_port}/stella/portal@{images['v1']}"
    client.pull(f"{lab_registry.host_port}/stella/portal", tag=images["v1"])
    cid = client.create_container(ref, command=["sh", "-c", "exec sleep 3600"],
                                  labels={"stella.app": app, "stella.component": "web", "stella.digest": images["v2"]},
                                  healthcheck={"test": ["CMD", "false"], "interval": 200_000_000, "retries": 1})["Id"]
    client.start(cid)
    deadline = time.monotonic() + 15
    while client.inspect_container(cid)["State"]["Health"]["Status"] != "unhealthy":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    check_facts("label_lies_and_unhealthy", target, app, {"web": (images["v1"], False)})
