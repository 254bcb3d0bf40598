"""One deployment over an ecs, a nomad and a winrm target through the two-phase engine, all or
nothing. Peers: moto's ECS server (not AWS), the fake Nomad agent and the fake WS-Management
endpoint (devstack/fakes/, written from the API docs; not Nomad, not Windows)."""

from __future__ import annotations

import nomad
import winrm

from stella_operators.deploy.engine import run_deployment
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, TargetPlan, VersionSticker
from stella_operators.targets.ecs import EcsSettings
from stella_operators.targets.ecs.target import EcsTarget
from stella_operators.targets.nomad import NomadSettings
from stella_operators.targets.nomad.target import NomadTarget
from stella_operators.targets.winrm import WinrmSettings
from stella_operators.targets.winrm.target import WinrmTarget
from tests.fixtures.cloud_peers import NOMAD_TOKEN, WINRM_PASSWORD, WINRM_USER
from tests.integration import test_ecs_target as ecs_t
from tests.integration import test_nomad_target as nomad_t
from tests.integration import test_winrm_target as win_t

REPO = "reg.example/shop/web"
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def _plan(target: str, digest: str, deployment: str) -> TargetPlan:
    comp = ComponentDigest(name="web", repository=REPO, digest=digest, tag="2.0")
    sticker = VersionSticker(app="shop", release_id="r", release_name="2.0", content_hash="h", components=[comp],
                             deployment_id=deployment, promotion_id="p", environment="prod", target=target,
                             strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target=target, deployment_id=deployment,
                      components=(ComponentSpec(component=comp),), sticker=sticker)


def _estate(moto_ecs, fake_nomad, fake_winrm):
    cluster, service, before = ecs_t._service(moto_ecs)
    fake_nomad.seed(nomad_t._job())
    win_t._host(fake_winrm)
    fake_winrm.host.images[f"{REPO}@{D3}"] = {"app.exe": b"v3", "CRASH": b""}
    ecs = EcsTarget("ecs", ecs_t._client(moto_ecs), EcsSettings(cluster=cluster, service=service, poll_interval_s=0.1))
    nmd = NomadTarget("nomad", nomad.Nomad(host="127.0.0.1", port=fake_nomad.port, token=NOMAD_TOKEN),
                      NomadSettings(job="shop", poll_interval_s=0.05, min_healthy_time_s=0, deployment_timeout_s=20))
    win = WinrmTarget("win", winrm.Session(fake_winrm.url, auth=(WINRM_USER, WINRM_PASSWORD), transport="basic"),
                      WinrmSettings(services={"web": "shop-web"}, start_timeout_s=5))
    return ecs, nmd, win, before


def test_a_deployment_over_three_kinds_of_target_lands_everywhere(moto_ecs, fake_nomad, fake_winrm):
    """moto_server, the fake Nomad agent and the fake WinRM endpoint (not AWS, Nomad, Windows)."""
    ecs, nmd, win, _ = _estate(moto_ecs, fake_nomad, fake_winrm)
    outcome = run_deployment([(t, _plan(t.name, D2, "dep-a")) for t in (ecs, nmd, win)], timeout_s=60)
    assert outcome.ok, outcome.error
    for t in (ecs, nmd, win):
        assert t.facts("shop").components["web"].digest == D2, t.name


def test_a_target_failing_at_commit_rolls_every_target_back(moto_ecs, fake_nomad, fake_winrm):
    """moto_server, the fake Nomad agent and the fake WinRM endpoint (not AWS, Nomad, Windows):
    the Windows service does not start the new version; the ECS service and the Nomad job, already
    switched, go back to what ran before, and so does the Windows host."""
    ecs, nmd, win, ecs_before = _estate(moto_ecs, fake_nomad, fake_winrm)
    assert run_deployment([(win, _plan("win", D1, "dep-0"))], timeout_s=60).ok  # the Windows host runs D1
    outcome = run_deployment([(t, _plan(t.name, D3, "dep-b")) for t in (ecs, nmd, win)], timeout_s=60)
    assert not outcome.ok and "cannot be started" in (outcome.error or "") + str(outcome.target("win").error)
    assert outcome.not_restored == []
    assert ecs.service()["taskDefinition"] == ecs_before
    job = fake_nomad.state.job("default", "shop")
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == nomad_t.OLD_IMAGE
    assert win.facts("shop").components["web"].digest == D1 and fake_winrm.host.services["shop-web"] == "Running"
