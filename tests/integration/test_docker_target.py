"""DockerTarget + the two-phase engine against real dockerd hosts and a real registry (no mocks).

Two Docker Engines run in their own network namespaces (tests/fixtures/docker_peer.py) and pull
from a distribution registry on the lab bridge. The tests in `TestShopLifecycle` run in order on
one app: v1 -> same again -> v2 -> unhealthy image -> missing digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime

import pytest

from devstack.registry import RegistryServer
from stella_operators.deploy import DeploymentOutcome, run_deployment
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import (
    ComponentSpec,
    DeployError,
    HealthCheck,
    TargetPlan,
    VersionSticker,
    sticker_labels,
)
from stella_operators.targets.docker.target import STICKER_PATH, DockerTarget, container_name

pytestmark = pytest.mark.root

SECRET = "hunter2-do-not-log-me"
HEALTH = HealthCheck(command=["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                     interval_s=0.5, timeout_s=2.0, retries=2)


@pytest.fixture(scope="module")
def images(lab_web_image) -> dict[str, str]:
    """Digests pushed to the lab registry: two healthy versions, an unhealthy one, an OCI-format one."""
    return {
        "v1": lab_web_image("stella/shop", "v1", version="1.0.0"),
        "v2": lab_web_image("stella/shop", "v2", version="2.0.0"),
        "bad": lab_web_image("stella/shop", "v3-broken", version="3.0.0", healthy=False),
        "oci": lab_web_image("stella/shop-oci", "v1", version="1.0.0-oci", fmt="oci"),
    }


@pytest.fixture
def targets(docker_hosts, docker_clients) -> list[DockerTarget]:
    return [DockerTarget(h.name, c, pull_timeout_s=60, stop_timeout_s=1)
            for h, c in zip(docker_hosts, docker_clients, strict=True)]


def plan_for(target: DockerTarget, registry: RegistryServer, app: str, repository: str, digest: str, *,
             release: str, deployment: str, health: HealthCheck | None = HEALTH) -> TargetPlan:
    comp = ComponentDigest(name="web", repository=f"{registry.host_port}/{repository}", digest=digest,
                           tag=release)
    sticker = VersionSticker(
        app=app, release_id=f"rel-{release}", release_name=release,
        content_hash="sha256:" + hashlib.sha256(digest.encode()).hexdigest(), components=[comp],
        deployment_id=deployment, promotion_id=f"promo-{deployment}", environment="staging",
        target=target.name, strategy="all_at_once", deployed_at=datetime.now(UTC).isoformat())
    spec = ComponentSpec(component=comp, env={"DB_PASSWORD": SECRET, "APP_ENV": "staging"}, health=health)
    return TargetPlan(app=app, environment="staging", target=target.name, deployment_id=deployment,
                      components=(spec,), sticker=sticker, health_timeout_s=30)


def deploy(targets, registry, app, repository, digests: list[str] | str, *, release: str,
           deployment: str) -> tuple[DeploymentOutcome, list[TargetPlan]]:
    if isinstance(digests, str):
        digests = [digests] * len(targets)
    plans = [plan_for(t, registry, app, repository, d, release=release, deployment=deployment)
             for t, d in zip(targets, digests, strict=True)]
    outcome = run_deployment(list(zip(targets, plans, strict=True)), max_parallel=4, timeout_s=120)
    assert SECRET not in json.dumps([t.__dict__ for t in outcome.targets], default=str)
    assert SECRET not in (outcome.error or "")
    return outcome, plans


def app_containers(client, app: str) -> list[dict]:
    return client.containers(all=True, filters={"label": f"stella.app={app}"})


def running_ids(clients, app: str) -> list[list[str]]:
    return [sorted(c["Id"] for c in app_containers(cl, app) if c["State"] == "running") for cl in clients]


class TestShopLifecycle:
    app = "shop"

    def test_deploy_v1_to_two_hosts(self, targets, docker_clients, lab_registry, images, caplog):
        caplog.set_level(logging.DEBUG)
        outcome, plans = deploy(targets, lab_registry, self.app, "stella/shop", images["v1"], release="1.0.0",
                                deployment="dep-1")
        assert outcome.status == "deployed", outcome.error
        assert SECRET not in caplog.text
        for target, plan, client in zip(targets, plans, docker_clients, strict=True):
            to = outcome.target(target.name)
            assert to.status == "deployed"
            assert to.digests_before == {}
            assert to.digests_after == {"web": images["v1"]}
            assert {"web.pull", "web.start", "web.health", "pull", "start", "health"} <= set(to.timings_ms)
            facts = target.facts(self.app)
            rc = facts.components["web"]
            assert rc.digest == images["v1"] and rc.healthy
            assert rc.workload_name == container_name(self.app, "web", images["v1"])
            assert facts.sticker == plan.sticker
            # labels carry the sticker
            for key, value in sticker_labels(plan.sticker).items():
                assert rc.labels[key] == value
            assert rc.labels["stella.component"] == "web" and rc.labels["stella.digest"] == images["v1"]
            # ... and so does the file inside the container (read with a real `docker exec`)
            exec_id = client.exec_create(rc.workload_id, ["cat", STICKER_PATH])["Id"]
            assert VersionSticker.model_validate_json(client.exec_start(exec_id)) == plan.sticker
            assert target.read_sticker_file(rc.workload_id) == plan.sticker
            # the secret reached the workload, not the logs
            env = client.inspect_container(rc.workload_id)["Config"]["Env"]
            assert f"DB_PASSWORD={SECRET}" in env
            # the health check was converted (ns)
            info = client.inspect_container(rc.workload_id)
            hc = info["Config"]["Healthcheck"]
            assert hc["Test"][0] == "CMD" and hc["Interval"] == 500_000_000 and hc["Retries"] == 2
            # restart policy set once healthy
            assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    def test_same_plan_again_changes_nothing(self, targets, docker_clients, lab_registry, images):
        before = running_ids(docker_clients, self.app)
        outcome, _ = deploy(targets, lab_registry, self.app, "stella/shop", images["v1"], release="1.0.0",
                            deployment="dep-1")
        assert outcome.status == "unchanged", outcome.error
        assert all(t.status == "unchanged" for t in outcome.targets)
        assert running_ids(docker_clients, self.app) == before
        assert all(len(ids) == 1 for ids in before)

    def test_v2_replaces_v1_only_after_v2_is_healthy(self, targets, docker_clients, lab_registry, images):
        old = running_ids(docker_clients, self.app)
        since = int(time.time()) - 1
        outcome, _ = deploy(targets, lab_registry, self.app, "stella/shop", images["v2"], release="2.0.0",
                            deployment="dep-2")
        until = int(time.time()) + 1
        assert outcome.status == "deployed", outcome.error
        for target, client, old_ids in zip(targets, docker_clients, old, strict=True):
            to = outcome.target(target.name)
            assert to.digests_before == {"web": images["v1"]}
            assert to.digests_after == {"web": images["v2"]}
            containers = app_containers(client, self.app)
            assert len(containers) == 1 and containers[0]["State"] == "running"
            assert containers[0]["Id"] not in old_ids
            new_id = containers[0]["Id"]
            # the engine's own event stream: v2 healthy strictly before v1 was stopped
            events = list(client.events(since=since, until=until, decode=True, filters={"type": "container"}))
            healthy_at = [e["timeNano"] for e in events
                          if e["id"] == new_id and e.get("status", "").startswith("health_status: healthy")]
            stopped_at = [e["timeNano"] for e in events if e["id"] == old_ids[0] and e.get("status") in ("kill", "die")]
            destroyed = [e for e in events if e["id"] == old_ids[0] and e.get("status") == "destroy"]
            assert healthy_at and stopped_at and destroyed, events
            assert min(healthy_at) < min(stopped_at)

    def test_unhealthy_image_rolls_back_everywhere(self, targets, docker_clients, lab_registry, images):
        before = running_ids(docker_clients, self.app)
        outcome, _ = deploy(targets, lab_registry, self.app, "stella/shop", images["bad"], release="3.0.0",
                            deployment="dep-3")
        assert outcome.status == "rolled_back"
        assert "unhealthy" in outcome.error or "not healthy" in outcome.error
        for target in targets:
            to = outcome.target(target.name)
            assert to.status == "failed"
            assert to.digests_after == to.digests_before == {"web": images["v2"]}
        # v2 still runs with the same containers, and nothing else is left behind
        assert running_ids(docker_clients, self.app) == before
        for client in docker_clients:
            assert len(app_containers(client, self.app)) == 1
        for target in targets:
            assert target.facts(self.app).digests() == {"web": images["v2"]}

    def test_missing_digest_rolls_back_the_other_host_too(self, targets, docker_clients, lab_registry, images):
        before = running_ids(docker_clients, self.app)
        missing = "sha256:" + "0" * 64
        # host a gets a good new image (v1) and prepares it; host b's digest does not exist
        outcome, _ = deploy(targets, lab_registry, self.app, "stella/shop", [images["v1"], missing],
                            release="4.0.0", deployment="dep-4")
        assert outcome.status == "rolled_back"
        b = outcome.target(targets[1].name)
        assert b.status == "failed"
        assert missing in b.error and ("not found" in b.error or "manifest unknown" in b.error), b.error
        a = outcome.target(targets[0].name)
        assert a.status == "rolled_back" and a.error is None
        assert any("discarded" in line for line in a.log), a.log
        assert running_ids(docker_clients, self.app) == before
        for client in docker_clients:
            assert len(app_containers(client, self.app)) == 1

    def test_commit_failing_on_the_second_host_restores_both(self, targets, docker_clients, lab_registry, images):
        """Host a switches to v1; host b stops its old container, then its engine call fails: both
        are restored to v2 by starting the very containers that commit stopped."""
        before = running_ids(docker_clients, self.app)
        a, b = targets
        failing_b = CommitFailsAfterStopping(b.name, b.api, pull_timeout_s=60, stop_timeout_s=1)
        outcome, _ = deploy([a, failing_b], lab_registry, self.app, "stella/shop", images["v1"], release="5.0.0",
                            deployment="dep-5")
        assert outcome.status == "rolled_back", outcome.error
        assert f"{b.name}: commit failed: engine connection lost" in outcome.error
        assert outcome.target(a.name).status == "rolled_back" and outcome.target(b.name).status == "failed"
        for target in targets:
            assert outcome.target(target.name).digests_after == {"web": images["v2"]}
            assert target.facts(self.app).digests() == {"web": images["v2"]}
        assert running_ids(docker_clients, self.app) == before  # the same containers, started again
        for client in docker_clients:
            assert client.containers(all=True, filters={"label": "stella.deployment.id=dep-5"}) == []
            assert len(app_containers(client, self.app)) == 1


class CommitFailsAfterStopping(DockerTarget):
    """The real commit (stops the old container on the real engine), then the engine is 'lost'."""

    def commit(self, plan, prepared):
        super().commit(plan, prepared)
        raise DeployError(self.name, "commit failed: engine connection lost")


def test_oci_image_deploys(targets, docker_clients, lab_registry, images):
    outcome, plans = deploy(targets, lab_registry, "ocishop", "stella/shop-oci", images["oci"], release="1.0.0-oci",
                            deployment="dep-oci")
    assert outcome.status == "deployed", outcome.error
    for target in targets:
        assert target.facts("ocishop").digests() == {"web": images["oci"]}
    image = docker_clients[0].inspect_image(plans[0].components[0].component.ref)
    assert plans[0].components[0].component.ref in image["RepoDigests"]


def test_crashing_container_is_reported_with_its_exit_code_but_not_its_secret(targets, docker_clients, lab_registry,
                                                                                images, caplog):
    caplog.set_level(logging.DEBUG)
    target, client = targets[0], docker_clients[0]
    p = plan_for(target, lab_registry, "crashy", "stella/shop", images["v1"], release="1.0.0", deployment="dep-crash",
                 health=None)
    spec = p.components[0]
    # the workload prints its secret and dies: the error carries the exit code and the output, redacted
    crashing = spec.model_copy(update={"command": ["sh", "-c", 'echo "starting with $DB_PASSWORD"; exit 3']})
    p = TargetPlan(app=p.app, environment=p.environment, target=p.target, deployment_id=p.deployment_id,
                   components=(crashing,), sticker=p.sticker, health_timeout_s=10)
    outcome = run_deployment([(target, p)])
    assert outcome.status == "rolled_back"
    err = outcome.target(target.name).error
    assert "exited with code 3" in err and "starting with ***" in err, err
    assert SECRET not in err and SECRET not in caplog.text
    assert app_containers(client, "crashy") == []


def test_facts_take_the_digest_from_the_image_not_from_the_label(targets, docker_clients, lab_registry, images):
    target, client = targets[0], docker_clients[0]
    ref = f"{lab_registry.host_port}/stella/shop@{images['v1']}"
    client.pull(f"{lab_registry.host_port}/stella/shop", tag=images["v1"])
    # a container that claims (by label) to run v2 but runs the v1 image
    cid = client.create_container(ref, name="liar-web", labels={"stella.app": "liar", "stella.component": "web",
                                                                "stella.digest": images["v2"]})["Id"]
    try:
        client.start(cid)
        facts = target.facts("liar")
        assert facts.digests() == {"web": images["v1"]}
        assert facts.components["web"].labels["stella.digest"] == images["v2"]
    finally:
        client.remove_container(cid, force=True)
