"""The Docker target's runtime fields other than ports against real dockerd hosts
(tests/fixtures/docker_peer.py, 10.200.0.10 / .11) and a real registry: named volumes keep data
across releases, a failing migration stops the deployment with the old release still running,
env_from secrets reach the container and nothing else, networks with aliases and resource limits
take effect, and facts come from the engine, not from labels. Published ports:
test_docker_runtime_ports.py.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from stella_operators.deploy import run_deployment
from stella_operators.targets.docker.target import DockerTarget
from tests.integration.docker_runtime_support import (  # noqa: F401 - *_fixture: fixtures
    SECRET,
    check_facts,
    cleanup_fixture,
    containers,
    deploy,
    ids,
    images_fixture,
    plan,
    run_in,
    spec,
    targets_fixture,
)

pytestmark = pytest.mark.root


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
