"""`compose` target against real hosts: three network namespaces, each with its own address running
a real sshd and a real dockerd (tests/fixtures/compose_lab.py), images from a real registry, the
compose v2 CLI run on each host over SSH (paramiko through the Airflow SSH provider's SSHHook, host
keys pinned in the Connection). No mocks.

The tests run in order on one app (`shop`, components web + api):
v1 everywhere -> same again (nothing recreated) -> web v2 (api left alone) -> an unhealthy web
(rolled back to the previous lock file) -> a host's dockerd, then its sshd, stopped mid-rollout
(the hosts already changed are rolled back; once the host is back a re-run converges).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.compose_lab import conn_id_for
from stella_operators.deploy import DeploymentOutcome, run_deployment
from stella_operators.deploy.rollback import restore_targets
from stella_operators.estate.models import TargetConfig
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.compose import TARGET_TYPE, ComposeSettings
from stella_operators.targets.compose.lockfile import FAILED_LOCK_FILE, LOCK_FILE, PREVIOUS_LOCK_FILE, read_lock
from stella_operators.targets.compose.target import ComposeTarget
from stella_operators.targets.contract import ComponentSpec, DeployError, HealthCheck, TargetPlan, VersionSticker

pytestmark = pytest.mark.root

APP = "shop"
SECRET = "hunter2-compose-secret"
HEALTH = HealthCheck(command=["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                     interval_s=0.5, timeout_s=2.0, retries=2)
OVERRIDE = "services:\n  web:\n    labels:\n      ops.team: payments\n"


@pytest.fixture(scope="module")
def lab(compose_lab) -> Iterator[Any]:
    """The lab with its ssh Connections in the environment (Airflow reads AIRFLOW_CONN_*)."""
    saved = {k: os.environ.get(k) for k in compose_lab.connection_env()}
    os.environ.update(compose_lab.connection_env())
    try:
        yield compose_lab
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def images(lab) -> dict[str, str]:
    return {"web1": lab.push_web("stella/web", "1.0.0"), "web2": lab.push_web("stella/web", "2.0.0"),
            "web3": lab.push_web("stella/web", "3.0.0"),
            "bad": lab.push_web("stella/web", "9.9.9-broken", healthy=False),
            "api1": lab.push_web("stella/api", "1.0.0")}


@pytest.fixture(scope="module")
def dirs(lab, tmp_path_factory) -> dict[str, Path]:
    """Per host: the project folder (settings.project_dir) and an override file for c1 (extra_files)."""
    root = tmp_path_factory.mktemp("compose-projects")
    (root / "ops").mkdir()
    (root / "ops" / "override.yml").write_text(OVERRIDE)
    return {"root": root, **{h: root / h / APP for h in lab.hosts}}


def settings_for(lab, dirs, host: str) -> ComposeSettings:
    """c1 merges an ops override file, c2 runs Debian's docker CLI 20.10, c3 names its project."""
    extra: dict[str, Any] = {"project_dir": str(dirs[host]), "connect_attempts": 1, "command_timeout_s": 120}
    if host == "c1":
        extra["extra_files"] = [str(dirs["root"] / "ops" / "override.yml")]
    if host == "c2":
        extra["docker_cli"] = "/usr/bin/docker"
    if host == "c3":
        extra["project"] = "shop-c3"
    return ComposeSettings(**lab.settings(host, **extra))


@pytest.fixture
def targets(lab, dirs) -> Iterator[list[ComposeTarget]]:
    """Fresh targets (fresh SSH connections) for every test; closed afterwards."""
    built = [TARGET_TYPE.build(TargetConfig(name=h, type="compose", connection=conn_id_for(h)),
                               settings_for(lab, dirs, h)) for h in lab.hosts]
    try:
        yield built  # type: ignore[misc]
    finally:
        for t in built:
            t.remote.close()


def plan_for(target: str, web: str, api: str, registry: str, *, release: str, deployment: str) -> TargetPlan:
    comps = [ComponentDigest(name="web", repository=f"{registry}/stella/web", digest=web, tag=release),
             ComponentDigest(name="api", repository=f"{registry}/stella/api", digest=api, tag="1.0.0")]
    sticker = VersionSticker(
        app=APP, release_id=f"rel-{release}", release_name=f"shop-{release}",
        content_hash="sha256:" + hashlib.sha256(f"{web}{api}".encode()).hexdigest(), components=comps,
        deployment_id=deployment, promotion_id=f"promo-{deployment}", environment="prod", target=target,
        strategy="all_at_once", deployed_at=datetime.now(UTC).isoformat())
    specs = (ComponentSpec(component=comps[0], env={"DB_PASSWORD": SECRET, "PRICE": "$5 ${HOME}"}, health=HEALTH),
             ComponentSpec(component=comps[1], command=["sh", "-c", "echo api $$ && exec httpd -f -p 8080 -h /www"],
                           health=HEALTH))
    return TargetPlan(app=APP, environment="prod", target=target, deployment_id=deployment, components=specs,
                      sticker=sticker, health_timeout_s=25)


def deploy(targets, lab, web: str, api: str, *, release: str, deployment: str,
           max_parallel: int = 3) -> tuple[DeploymentOutcome, list[TargetPlan]]:
    assert lab.registry is not None
    plans = [plan_for(t.name, web, api, lab.registry.host_port, release=release, deployment=deployment)
             for t in targets]
    outcome = run_deployment(list(zip(targets, plans, strict=True)), max_parallel=max_parallel, timeout_s=180,
                             cleanup_timeout_s=120)
    text = json.dumps([t.__dict__ for t in outcome.targets], default=str) + (outcome.error or "")
    assert SECRET not in text
    return outcome, plans


def running(target: ComposeTarget) -> dict[str, str | None]:
    return target.facts(APP).digests()


def container_ids(target: ComposeTarget) -> dict[str, str]:
    return {c: rc.workload_id for c, rc in target.facts(APP).components.items()}


def docker(lab, host: str, *args: str) -> str:
    return subprocess.run(["docker", "-H", f"unix://{lab.hosts[host].socket}", *args], check=True,
                          capture_output=True, text=True, timeout=60).stdout


class AfterPrepare:
    """A target that runs `action` once its prepare has succeeded (a host dying mid-rollout)."""

    def __init__(self, inner: ComposeTarget, action: Callable[[], None]):
        self.inner, self.action = inner, action

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prepare(self, plan: TargetPlan):
        prepared = self.inner.prepare(plan)
        self.action()
        return prepared


class TestComposeLifecycle:
    def test_first_deployment_writes_a_pinned_checksummed_lock_file_on_every_host(self, lab, images, dirs, targets):
        outcome, _ = deploy(targets, lab, images["web1"], images["api1"], release="1.0.0", deployment="dep-1")
        assert outcome.status == "deployed", outcome.error
        for t in targets:
            assert running(t) == {"web": images["web1"], "api": images["api1"]}
            text = (dirs[t.name] / LOCK_FILE).read_text()
            lock = read_lock(text)
            # the deploy task gets the very file back, for the evidence locker (no env values in it)
            assert outcome.target(t.name).host_files == {LOCK_FILE: text}
            # every image by digest; the tag only as a comment
            assert lock.images() == {"web": f"{lab.registry.host_port}/stella/web@{images['web1']}",
                                     "api": f"{lab.registry.host_port}/stella/api@{images['api1']}"}
            assert f'@{images["web1"]}"  # tag 1.0.0' in text
            assert ":1.0.0" not in text.replace("# tag 1.0.0", "")
            # sticker labels + x-stella ids
            web = lock.services["web"]["labels"]
            assert web["stella.deployment.id"] == "dep-1" and web["stella.digest"] == images["web1"]
            assert json.loads(web["stella.version.json"])["target"] == t.name
            assert {k: lock.stella[k] for k in ("app", "environment", "release_id", "deployment_id", "promotion_id")} \
                == {"app": APP, "environment": "prod", "release_id": "rel-1.0.0", "deployment_id": "dep-1",
                    "promotion_id": "promo-dep-1"}
            # the checksum, verified the way the file's header says a person can
            blanked = subprocess.run(["sed", 's/^  checksum: .*/  checksum: ""/', str(dirs[t.name] / LOCK_FILE)],
                                     capture_output=True, check=True).stdout
            assert lock.checksum == "sha256:" + hashlib.sha256(blanked).hexdigest()
            # secrets: never in the lock file; in a 0600 env file the container reads verbatim
            assert SECRET not in text
            env_file = dirs[t.name] / "env" / "dep-1" / "web.env"
            assert env_file.stat().st_mode & 0o777 == 0o600 and (env_file.parent.stat().st_mode & 0o777) == 0o700
            facts = t.facts(APP)
            cid = facts.components["web"].workload_id
            env = json.loads(docker(lab, t.name, "inspect", "--format", "{{json .Config.Env}}", cid))
            assert f"DB_PASSWORD={SECRET}" in env and "PRICE=$5 ${HOME}" in env
            assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"
            labels = facts.components["web"].labels
            # settings with an effect: c1's override file merged, c3's project name
            assert (labels.get("ops.team") == "payments") == (t.name == "c1")
            assert labels["com.docker.compose.project"] == ("shop-c3" if t.name == "c3" else APP)
        assert not (dirs["c1"] / PREVIOUS_LOCK_FILE).exists()

    def test_a_rerun_converges_without_recreating_anything(self, lab, images, dirs, targets):
        before = {t.name: container_ids(t) for t in targets}
        checksums = {t.name: read_lock((dirs[t.name] / LOCK_FILE).read_text()).checksum for t in targets}
        outcome, _ = deploy(targets, lab, images["web1"], images["api1"], release="1.0.0", deployment="dep-1b")
        assert outcome.status == "unchanged", outcome.error
        assert {t.name: container_ids(t) for t in targets} == before
        assert {t.name: read_lock((dirs[t.name] / LOCK_FILE).read_text()).checksum for t in targets} == checksums

    def test_a_new_web_replaces_web_only_and_keeps_the_previous_lock_file(self, lab, images, dirs, targets):
        before = {t.name: container_ids(t) for t in targets}
        outcome, _ = deploy(targets, lab, images["web2"], images["api1"], release="2.0.0", deployment="dep-2")
        assert outcome.status == "deployed", outcome.error
        for t in targets:
            after = container_ids(t)
            assert after["api"] == before[t.name]["api"], "api was not in the change: left alone"
            assert after["web"] != before[t.name]["web"]
            assert running(t) == {"web": images["web2"], "api": images["api1"]}
            assert read_lock((dirs[t.name] / LOCK_FILE).read_text()).deployment_id == "dep-2"
            assert read_lock((dirs[t.name] / PREVIOUS_LOCK_FILE).read_text()).deployment_id == "dep-1"
            assert t.facts(APP).sticker.deployment_id == "dep-2"

    def test_a_failing_health_check_brings_the_previous_lock_file_back_up(self, lab, images, dirs, targets):
        outcome, _ = deploy(targets, lab, images["bad"], images["api1"], release="9.9.9", deployment="dep-bad")
        assert outcome.status == "rolled_back", outcome.error
        assert "unhealthy" in (outcome.error or "")
        for t in targets:
            assert running(t) == {"web": images["web2"], "api": images["api1"]}
            assert all(rc.healthy for rc in t.facts(APP).components.values())
            assert read_lock((dirs[t.name] / LOCK_FILE).read_text()).deployment_id == "dep-2"
        failed = [t.name for t in targets if (dirs[t.name] / FAILED_LOCK_FILE).exists()]
        assert failed, "the rolled-back lock file is kept for a post-mortem"
        assert read_lock((dirs[failed[0]] / FAILED_LOCK_FILE).read_text()).deployment_id == "dep-bad"

    def test_dockerd_stopped_mid_rollout_rolls_back_the_changed_host_and_a_rerun_converges(
            self, lab, images, dirs, targets):
        c1, c2, c3 = targets
        first = AfterPrepare(c1, lambda: lab.stop_engine("c2"))
        try:
            outcome, _ = deploy([first, c2, c3], lab, images["web3"], images["api1"], release="3.0.0",
                                deployment="dep-3", max_parallel=1)
            assert outcome.status == "rolled_back", outcome.error
            assert outcome.target("c1").status == "rolled_back"
            assert outcome.target("c2").status == "failed" and "c2" in (outcome.target("c2").error or "")
            assert running(c1) == {"web": images["web2"], "api": images["api1"]}
            assert read_lock((dirs["c1"] / LOCK_FILE).read_text()).deployment_id == "dep-2"
            assert running(c3) == {"web": images["web2"], "api": images["api1"]}
        finally:
            lab.start_engine("c2")
        outcome, _ = deploy(targets, lab, images["web3"], images["api1"], release="3.0.0", deployment="dep-3r")
        assert outcome.status == "deployed", outcome.error
        assert all(running(t) == {"web": images["web3"], "api": images["api1"]} for t in targets)
        again, _ = deploy(targets, lab, images["web3"], images["api1"], release="3.0.0", deployment="dep-3s")
        assert again.status == "unchanged", again.error

    def test_sshd_stopped_mid_rollout_rolls_back_the_changed_hosts_and_a_rerun_converges(
            self, lab, images, dirs, targets):
        c1, c2, c3 = targets
        second = AfterPrepare(c2, lambda: lab.stop_sshd("c3"))
        try:
            outcome, _ = deploy([c1, second, c3], lab, images["web2"], images["api1"], release="2.0.0",
                                deployment="dep-4", max_parallel=1)
            assert outcome.status == "rolled_back", outcome.error
            assert [outcome.target(n).status for n in ("c1", "c2", "c3")] == ["rolled_back", "rolled_back", "failed"]
            assert "cannot connect over SSH" in (outcome.target("c3").error or "")
            for t in (c1, c2):
                assert running(t) == {"web": images["web3"], "api": images["api1"]}
                assert read_lock((dirs[t.name] / LOCK_FILE).read_text()).deployment_id == "dep-3r"
        finally:
            lab.start_sshd("c3")
        outcome, _ = deploy(targets, lab, images["web2"], images["api1"], release="2.0.0", deployment="dep-4r")
        assert outcome.status == "deployed", outcome.error
        assert all(running(t) == {"web": images["web2"], "api": images["api1"]} for t in targets)

    def test_a_lock_file_changed_by_hand_stops_the_deployment_before_that_host_changes(
            self, lab, images, dirs, targets):
        lock_path = dirs["c2"] / LOCK_FILE
        original = lock_path.read_text()
        lock_path.write_text(original.replace('restart: "unless-stopped"', 'restart: "always"', 1))
        try:
            outcome, _ = deploy(targets, lab, images["web3"], images["api1"], release="3.0.0", deployment="dep-t")
            assert outcome.status == "rolled_back", outcome.error
            assert "the current lock file cannot be trusted" in (outcome.target("c2").error or "")
            assert "checksum mismatch" in (outcome.target("c2").error or "")
            assert all(running(t) == {"web": images["web2"], "api": images["api1"]} for t in targets)
            assert lock_path.read_text() != original  # c2 left as it was, the hand edit included
        finally:
            lock_path.write_text(original)

    def test_a_deployment_whose_worker_died_after_the_switch_is_restored_from_the_host_files(
            self, lab, images, dirs, targets):
        """Recovery has only the ledger (deployment id, previous digests) and the hosts: a fresh
        target restores from the lock files on the host, and a second restore changes nothing."""
        c1 = targets[0]
        assert lab.registry is not None
        plan = plan_for("c1", images["web3"], images["api1"], lab.registry.host_port, release="3.0.0",
                        deployment="dep-5")
        previous = running(c1)
        c1.prepare(plan)  # switched; then the worker "dies": its PreparedChange is lost
        assert running(c1)["web"] == images["web3"]
        fresh = TARGET_TYPE.build(TargetConfig(name="c1", type="compose", connection=conn_id_for("c1")),
                                  settings_for(lab, dirs, "c1"))
        try:
            [result] = restore_targets([(fresh, plan, previous)])
            assert result.ok, result.error
            assert running(fresh) == previous == {"web": images["web2"], "api": images["api1"]}
            assert read_lock((dirs["c1"] / LOCK_FILE).read_text()).deployment_id == "dep-4r"
            ids = container_ids(fresh)
            [again] = restore_targets([(fresh, plan, previous)])
            assert again.ok, again.error
            assert container_ids(fresh) == ids
        finally:
            fresh.close()


def test_a_host_whose_key_is_not_the_pinned_one_is_refused(lab, dirs, monkeypatch):
    other = lab.sshd["c2"].host_key_line().split()[1:3]  # c2's key, pinned for c1
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id_for('c1').upper()}",
                       json.dumps(lab.connection("c1", host_key=" ".join(other))))
    target = TARGET_TYPE.build(TargetConfig(name="c1", type="compose", connection=conn_id_for("c1")),
                               settings_for(lab, dirs, "c1"))
    try:
        with pytest.raises(DeployError, match=r"c1 \(root@10\.203\.0\.10:22.*cannot connect over SSH.*BadHostKey"):
            target.facts(APP)
    finally:
        target.remote.close()


def test_a_known_hosts_file_named_in_the_connection_pins_the_host_key(lab, dirs, monkeypatch, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(lab.sshd["c1"].host_key_line() + "\n")
    conn = lab.connection("c1")
    conn["extra"] = {"key_file": conn["extra"]["key_file"], "known_hosts": str(known)}  # type: ignore[index]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id_for('c1').upper()}", json.dumps(conn))
    target = TARGET_TYPE.build(TargetConfig(name="c1", type="compose", connection=conn_id_for("c1")),
                               settings_for(lab, dirs, "c1"))
    try:
        assert set(target.facts(APP).components) == {"web", "api"}
    finally:
        target.remote.close()
    known.write_text(lab.sshd["c2"].host_key_line() + "\n")  # only another host's line
    with pytest.raises(ValueError, match=r"10\.203\.0\.10:22 is not in the known_hosts file"):
        TARGET_TYPE.build(TargetConfig(name="c1", type="compose", connection=conn_id_for("c1")),
                          settings_for(lab, dirs, "c1"))


def test_a_connection_that_skips_host_key_checks_is_refused(lab, dirs, monkeypatch):
    conn = lab.connection("c1")
    conn["extra"] = {"key_file": conn["extra"]["key_file"], "no_host_key_check": True}  # type: ignore[index]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id_for('c1').upper()}", json.dumps(conn))
    with pytest.raises(ValueError, match="turns host key verification off"):
        TARGET_TYPE.build(TargetConfig(name="c1", type="compose", connection=conn_id_for("c1")),
                          settings_for(lab, dirs, "c1"))


def test_lock_file_is_valid_for_compose_itself(lab, dirs):
    """`docker compose config` (the real CLI) accepts the lock file as written and keeps the digests."""
    out = subprocess.run(["docker", "compose", "-p", APP, "--project-directory", str(dirs["c1"]), "-f",
                          str(dirs["c1"] / LOCK_FILE), "config", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    config = yaml.safe_load(out)
    assert all("@sha256:" in svc["image"] for svc in config["services"].values())
