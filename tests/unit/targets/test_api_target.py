"""The shared shell of the ecs / nomad / winrm targets: what a log line shows of them, that every
prepare failure carries what was started (for discard), and that cancel() stops a nomad deployment
wait at its next poll (the engine calls it when its task is interrupted). The clients are
stand-ins for python-nomad answering with recorded API answers (tests/unit/targets/nomad/fixtures)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, DeployError, TargetPlan, VersionSticker
from stella_operators.targets.ecs import EcsSettings
from stella_operators.targets.ecs.target import EcsTarget
from stella_operators.targets.nomad import NomadSettings
from stella_operators.targets.nomad.target import NomadTarget
from stella_operators.targets.winrm import WinrmSettings
from stella_operators.targets.winrm.target import WinrmTarget


def test_each_target_names_itself_and_what_it_drives():
    assert repr(EcsTarget("e1", None, EcsSettings(cluster="c", service="s"))) == "EcsTarget('e1', c/s)"
    assert repr(NomadTarget("n1", None, NomadSettings(job="shop"))) == "NomadTarget('n1', job 'shop')"
    assert repr(WinrmTarget("w1", None, WinrmSettings(services={"web": "ShopWeb"}))) == "WinrmTarget('w1')"
    assert not hasattr(WinrmTarget, "cancel")  # the engine lets a winrm prepare finish


def test_cancel_stops_a_deployment_wait_at_its_next_poll():
    polls: list[float] = []

    def get_deployments(job: str) -> list[dict[str, Any]]:
        polls.append(time.monotonic())
        return [{"ID": "d1", "JobVersion": 3, "Status": "running", "TaskGroups": {}}]

    client = SimpleNamespace(job=SimpleNamespace(get_deployments=get_deployments))
    target = NomadTarget("n1", client, NomadSettings(job="shop", poll_interval_s=0.05, deployment_timeout_s=60))
    timer = threading.Timer(0.2, target.cancel)
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(DeployError, match="n1: cancelled: the deployment was interrupted"):
            target.wait(3, stop_at_canaries=False)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 2 and len(polls) >= 2


NOMAD_FIXTURES = Path(__file__).parent / "nomad" / "fixtures" / "facts"
D3 = "sha256:" + "3" * 64


def plan_of(target: str, *specs: ComponentSpec) -> TargetPlan:
    comps = [s.component for s in specs]
    sticker = VersionSticker(app="shop", release_id="r3", release_name="shop-3", content_hash="sha256:x",
                             components=comps, deployment_id="dep-3", promotion_id="p3", environment="prod",
                             target=target, strategy="all_at_once", deployed_at="2026-01-05T09:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target=target, deployment_id="dep-3", components=specs,
                      sticker=sticker)


def web(**fields: Any) -> ComponentSpec:
    return ComponentSpec(component=ComponentDigest(name="web", repository="reg.local:5000/shop/web", digest=D3),
                         **fields)


@pytest.mark.parametrize("target", [
    EcsTarget("e1", None, EcsSettings(cluster="c", service="s")),
    NomadTarget("n1", None, NomadSettings(job="shop")),
])
def test_a_command_for_a_component_the_remote_side_owns_is_refused_before_any_call(target):
    with pytest.raises(DeployError, match=f"^{target.name}: web: an? {target.kind} target keeps the command, env "
                                          "and .*remove them from the estate component") as err:
        target.prepare(plan_of(target.name, web(command=["sh"])))
    assert err.value.prepared is not None and err.value.prepared.started == {}


def test_an_unexpected_answer_during_prepare_is_a_deploy_error_that_carries_prepared():
    job = json.loads((NOMAD_FIXTURES / "job_promoted.json").read_text())
    allocs = json.loads((NOMAD_FIXTURES / "allocations_promoted.json").read_text())
    answers = [job, {"ID": job["ID"]}]  # the facts read the job; the second read has no Version

    client = SimpleNamespace(job=SimpleNamespace(get_job=lambda _: answers.pop(0), get_allocations=lambda _: allocs))
    target = NomadTarget("n1", client, NomadSettings(job="shop", tasks={"web": "api"}))
    with pytest.raises(DeployError, match="^n1: prepare failed: KeyError: 'Version'$") as err:
        target.prepare(plan_of("n1", web()))
    assert err.value.prepared is not None and err.value.prepared.target == "n1"
