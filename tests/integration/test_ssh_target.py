"""The `ssh` target + the two-phase engine against real OpenSSH servers (no mocks).

Three sshd hosts, each in its own network namespace with its own address (tests/fixtures/ssh_peer.py),
reached through Airflow Connections (AIRFLOW_CONN_*) and the SSH provider's async hook. The deploy
scripts are real files of an estate folder; the "service" records the image it runs, and its
status command checks that against the current release (tests/integration/ssh_support.py).
Every host's files live under a path with a space and a quote in it, and every activate gets an
argument full of shell syntax: both must arrive literally.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stella_operators.deploy import run_deployment
from stella_operators.targets.contract import DeployError, PreparedChange, TargetPlan
from stella_operators.targets.ssh.target import SshTarget
from tests.integration.ssh_support import NASTY_ARG, SECRET, World, digest, make_world, plan

pytestmark = pytest.mark.root

V1 = {"web": digest("web-1"), "worker": digest("worker-1")}
V2 = {"web": digest("web-2"), "worker": digest("worker-1")}   # only web changes


@pytest.fixture
def world(tmp_path, ssh_hosts, ssh_lab, monkeypatch) -> Iterator[World]:
    w = make_world(tmp_path, ssh_hosts, ssh_lab.client_key, monkeypatch)
    try:
        yield w
    finally:
        w.close()


def deploy(targets: list[SshTarget], digests: dict[str, str], *, release: str, deployment: str):
    plans = [plan(t.name, release=release, deployment=deployment, **digests) for t in targets]
    outcome = run_deployment(list(zip(targets, plans, strict=True)), max_parallel=4, timeout_s=120,
                             cleanup_timeout_s=120)
    text = json.dumps([t.__dict__ for t in outcome.targets], default=str) + (outcome.error or "")
    assert SECRET not in text
    return outcome, plans


def activations(world: World, host: str) -> list[str]:
    log = world.base(host) / "activations.log"
    return log.read_text().splitlines() if log.exists() else []


def running(world: World, host: str, component: str = "web") -> str | None:
    f = world.base(host) / f"running-{component}"
    return f.read_text().strip() if f.exists() else None


def releases(world: World, host: str) -> list[str]:
    d = world.base(host) / "releases"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_deploy_rerun_converges_and_only_changed_components_are_activated(world, monkeypatch):
    targets = [world.target(monkeypatch, h) for h in world.hosts[:2]]
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-1")
    assert out.status == "deployed", out.error
    for t in targets:
        facts = t.facts("shop")
        assert facts.digests() == V1
        assert all(rc.healthy for rc in facts.components.values())  # status ran in `current`, exit 0
        assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"
        base = world.base(t.name)
        assert (base / "current").resolve() == (base / "releases" / "dep-1").resolve()
        assert json.loads((base / "current" / "stella.version.json").read_text())["release_name"] == "1.0.0"
        # the env file carries the secret (mode 0600), and only there
        env = base / "current" / ".stella" / "web.env"
        assert env.stat().st_mode & 0o777 == 0o600
        # every argument arrived literally: the image, the shell-syntax one, the secret from the env file
        assert activations(world, t.name) == [
            f"dep-1 web reg.example:5000/shop/web@{V1['web']}|{NASTY_ARG}|{SECRET}",
            f"dep-1 worker reg.example:5000/shop/worker@{V1['worker']}|{NASTY_ARG}|{SECRET}"]
    assert not list(Path("/").glob("PWNED*")) and not list(world.root.rglob("PWNED*"))

    # same digests again: nothing uploaded, nothing activated
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-2")
    assert out.status == "unchanged", out.error
    assert all(len(activations(world, t.name)) == 2 for t in targets)
    assert releases(world, "s1") == ["dep-1"]

    # web changes, worker is kept (not re-activated)
    out, _ = deploy(targets, V2, release="1.1.0", deployment="dep-3")
    assert out.status == "deployed", out.error
    for t in targets:
        assert t.facts("shop").digests() == V2
        assert activations(world, t.name)[2:] == [
            f"dep-3 web reg.example:5000/shop/web@{V2['web']}|{NASTY_ARG}|{SECRET}"]
    # keep_releases = 2: after a third release only the newest two dirs stay
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-4")
    assert out.status == "deployed", out.error
    assert releases(world, "s1") == ["dep-3", "dep-4"]


def test_activate_failing_on_one_host_rolls_back_the_hosts_already_switched(world, monkeypatch):
    targets = [world.target(monkeypatch, h) for h in world.hosts]
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-a")
    assert out.status == "deployed", out.error
    # the service refuses to start web 2 on s3
    (world.host_root("s3") / "BREAK").write_text(f"reg.example:5000/shop/web@{V2['web']}\n")

    out, _ = deploy(targets, V2, release="1.1.0", deployment="dep-b")
    assert out.status == "rolled_back", out.error
    s3 = out.target("s3")
    assert s3.status == "failed"
    assert "activate of web on 10.204.0.12:22 failed (exit 7)" in (s3.error or "")
    assert "is broken on this host" in (s3.error or "")
    for t in targets:
        assert t.facts("shop").digests() == V1, t.name
        assert all(rc.healthy for rc in t.facts("shop").components.values())
        assert running(world, t.name) == f"reg.example:5000/shop/web@{V1['web']}"
        assert releases(world, t.name) == ["dep-a"]  # the failed deployment's dir is gone
    # s1 and s2 switched and activated web 2, then re-activated web 1 from the previous dir
    assert [line.split()[:2] for line in activations(world, "s1")[2:]] == [["dep-b", "web"], ["dep-a", "web"]]


def test_a_failed_first_deployment_puts_backup_paths_back_and_deactivates(world, monkeypatch):
    for h in world.hosts[:2]:
        (world.host_root(h.name) / "etc" / "shop.conf").write_text("hand-written\n")
    (world.host_root("s2") / "BREAK").write_text(f"reg.example:5000/shop/web@{V1['web']}\n")
    targets = [world.target(monkeypatch, h) for h in world.hosts[:2]]
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-first")
    assert out.status == "rolled_back", out.error
    for t in targets:
        assert t.facts("shop").digests() == {}
        assert not (world.base(t.name) / "current").exists()
        assert running(world, t.name) is None                       # deactivate ran on s1
        assert (world.host_root(t.name) / "etc" / "shop.conf").read_text() == "hand-written\n"


class _DiesAfterPrepare(SshTarget):
    """The real target; its host dies right after prepare (before the switch): sshd and every
    process in the host's namespace (the open sessions too) are killed."""

    kill = None

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        prepared = super().prepare(plan)
        type(self).kill()
        return prepared


def test_a_host_whose_sshd_dies_mid_rollout_leaves_the_others_rolled_back(world, ssh_lab, monkeypatch):
    s1, s2 = world.hosts[:2]
    out, _ = deploy([world.target(monkeypatch, s1), world.target(monkeypatch, s2)], V1, release="1.0.0",
                    deployment="dep-x")
    assert out.status == "deployed", out.error
    _DiesAfterPrepare.kill = lambda: ssh_lab.kill("s2")
    targets = [world.target(monkeypatch, s1), world.target(monkeypatch, s2, cls=_DiesAfterPrepare)]
    out, plans = deploy(targets, V2, release="1.1.0", deployment="dep-y")
    assert out.status == "failed" and out.not_restored == ["s2"], out.error
    assert "10.204.0.11:22" in (out.target("s2").error or "")
    assert out.target("s1").status == "rolled_back"
    assert targets[0].facts("shop").digests() == V1
    assert running(world, "s1") == f"reg.example:5000/shop/web@{V1['web']}"
    # s2 never switched; once it is back, restore (what recovery calls) finishes from its own state
    s2.server.start()
    plain = world.target(monkeypatch, s2)
    plain.restore(plans[1], dict(V1))
    assert plain.facts("shop").digests() == V1 and releases(world, "s2") == ["dep-x"]


def test_a_host_unreachable_before_prepare_changes_nothing_anywhere(world, ssh_lab, monkeypatch):
    targets = [world.target(monkeypatch, h) for h in world.hosts[:2]]
    out, _ = deploy(targets, V1, release="1.0.0", deployment="dep-p")
    assert out.status == "deployed", out.error
    ssh_lab.kill("s2")
    out, _ = deploy(targets, V2, release="1.1.0", deployment="dep-q")
    assert out.status == "rolled_back"
    assert "cannot read facts before deploying" in (out.target("s2").error or "")
    assert "10.204.0.11:22" in (out.target("s2").error or "")
    assert targets[0].facts("shop").digests() == V1 and releases(world, "s1") == ["dep-p"]


def test_a_host_key_that_does_not_match_is_refused_with_a_clear_error(world, monkeypatch):
    s1, s2 = world.hosts[:2]
    liar = world.target(monkeypatch, s1, host_key=s2.host_key())  # s2's key for s1's address
    with pytest.raises(DeployError, match=r"host key of 10\.204\.0\.10:22 is not trusted.*Refusing to connect"):
        liar.facts("shop")
    # no key known for the host at all (empty known_hosts file): refused as well
    empty = world.root / "known_hosts"
    empty.write_text("")
    unknown = world.target(monkeypatch, s1, settings=world.settings("s1", known_hosts_file=str(empty)),
                           host_key=None)
    with pytest.raises(DeployError, match="not trusted"):
        unknown.facts("shop")
    # the key as a known_hosts file (the target's setting) is accepted
    good = world.root / "known_hosts_good"
    good.write_text(s1.server.host_key_line() + "\n")
    ok = world.target(monkeypatch, s1, settings=world.settings("s1", known_hosts_file=str(good)), host_key=None)
    assert ok.facts("shop").digests() == {}
    # ... and so are known_hosts lines in the Connection's extra (they win over the file)
    inline = world.target(monkeypatch, s1, settings=world.settings("s1", known_hosts_file=str(empty)),
                          host_key=None, known_hosts=s1.server.host_key_line() + "\n")
    assert inline.facts("shop").digests() == {}
    wrong = world.target(monkeypatch, s1, settings=world.settings("s1", known_hosts_file=str(good)),
                         host_key=None, known_hosts=s2.server.host_key_line().replace(s2.ip, s1.ip) + "\n")
    with pytest.raises(DeployError, match="not trusted"):
        wrong.facts("shop")


def test_no_host_key_check_is_refused_unless_the_target_says_insecure_demo(world, monkeypatch):
    s1 = world.hosts[0]
    with pytest.raises(ValueError, match="no_host_key_check.*insecure_demo: true"):
        world.target(monkeypatch, s1, host_key=None, no_host_key_check=True)
    demo = world.target(monkeypatch, s1, settings=world.settings("s1", insecure_demo=True), host_key=None,
                        no_host_key_check=True)
    assert demo.facts("shop").digests() == {}


def test_a_check_that_fails_stops_before_the_switch(world, monkeypatch):
    s1 = world.hosts[0]
    settings = world.settings("s1")
    settings["components"]["web"] = {**settings["components"]["web"],
                                     "check": ["sh", "-c", "echo bad config >&2; exit 4"]}
    t = world.target(monkeypatch, s1, settings=settings)
    out, _ = deploy([t], V1, release="1.0.0", deployment="dep-c")
    assert out.status == "rolled_back"
    assert "check of web on 10.204.0.10:22 failed (exit 4): bad config" in (out.target("s1").error or "")
    assert releases(world, "s1") == [] and activations(world, "s1") == []


def test_a_command_over_its_timeout_is_killed_and_rolled_back(world, monkeypatch):
    s1 = world.hosts[0]
    settings = world.settings("s1", command_timeout_s=1)
    settings["components"]["web"] = {**settings["components"]["web"],
                                     "activate": ["sh", "-c", "sleep 30; echo done > \"$STELLA_BASE_DIR/late\""]}
    t = world.target(monkeypatch, s1, settings=settings)
    out, _ = deploy([t], V1, release="1.0.0", deployment="dep-t")
    assert out.status == "rolled_back", out.error
    assert "timed out (killed)" in (out.target("s1").error or "")
    assert t.facts("shop").digests() == {}


def test_a_host_that_does_not_answer_fails_after_connect_timeout(world, ssh_lab, monkeypatch):
    s1 = world.hosts[0]
    t = world.target(monkeypatch, s1, settings=world.settings("s1", connect_timeout_s=1))
    ns = ssh_lab.lab.netns_name("s1")
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "down"], check=True)  # packets vanish, no RST
    try:
        t0 = time.monotonic()
        with pytest.raises(DeployError, match=r"10\.204\.0\.10:22 did not answer in time"):
            t.facts("shop")
        assert time.monotonic() - t0 < 5
    finally:
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", ssh_lab.lab.bridge_ip], check=True)
