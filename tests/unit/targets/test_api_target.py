"""The shared shell of the ecs / nomad / winrm targets: what a log line shows of them, and that
cancel() stops a nomad deployment wait at its next poll (the engine calls it when its task is
interrupted). The client is a stand-in for python-nomad answering "deployment in progress"."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from stella_operators.targets.contract import DeployError
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
