"""Nomad facts, deployment state and next job spec: pure functions over recorded API answers.

The fixtures were recorded from the fake Nomad agent (devstack/fakes/nomad.py, written from
Nomad's HTTP API documentation), not from Nomad: GET /v1/job/:id, /allocations, /deployments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from stella_operators.targets.nomad import NomadSettings
from stella_operators.targets.nomad.facts import deployment_state, next_job, parse_facts, update_block

FIXTURES = Path(__file__).parent / "fixtures"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _load(fact: str, name: str) -> Any:
    return json.loads((FIXTURES / fact / name).read_text())


def test_facts_while_the_canary_waits_for_promotion_say_health_unknown():
    facts = parse_facts("n", "shop", _load("facts", "job_canary.json"), _load("facts", "allocations_canary.json"), {})
    assert facts.components["web"].digest == D2 and facts.components["web"].healthy is None  # 1 of 3 placed
    assert facts.components["log-router"].digest == D1
    assert facts.components["web"].workload_id == "shop@v1"
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"


def test_facts_after_promotion_and_after_an_auto_revert():
    promoted = parse_facts("n", "shop", _load("facts", "job_promoted.json"),
                           _load("facts", "allocations_promoted.json"), {"api": "web"})
    assert promoted.components["api"].digest == D2 and promoted.components["api"].healthy is True
    reverted = parse_facts("n", "shop", _load("facts", "job_reverted.json"),
                           _load("facts", "allocations_reverted.json"), {})
    assert reverted.components["web"].digest == D2 and reverted.components["web"].healthy is True  # back on dep-1's
    assert reverted.sticker is not None and reverted.sticker.deployment_id == "dep-1"


def test_a_failed_allocation_of_the_current_version_is_unhealthy():
    job = _load("facts", "job_promoted.json")
    allocs = _load("facts", "allocations_promoted.json")
    mine = next(a for a in allocs if a["JobVersion"] == job["Version"] and a["DesiredStatus"] == "run")
    mine["ClientStatus"] = "failed"
    assert parse_facts("n", "shop", job, allocs, {}).components["web"].healthy is False


@pytest.mark.parametrize(("name", "version", "phase"), [
    ("canaries_healthy.json", 1, "canaries_healthy"),
    ("canaries_healthy.json", 2, "waiting"),
    ("successful.json", 1, "successful"),
    ("failed_reverted.json", 2, "failed"),     # ours failed; the latest deployment is the revert's
    ("failed_reverted.json", 3, "successful"),
])
def test_deployment_state_of_a_version(name, version, phase):
    assert deployment_state(_load("deployment_state", name), version).phase == phase


def test_a_failed_deployment_says_why_in_nomad_words():
    state = deployment_state(_load("deployment_state", "failed_reverted.json"), 2)
    assert state.reason == "Failed due to unhealthy allocations - rolling back to job version 1"


def test_next_job_changes_only_the_image_and_sets_the_update_block_of_its_group():
    job = _load("next_job", "job.json")
    update = update_block(canary=2, max_parallel=3, auto_revert=False, min_healthy_time_s=5, healthy_deadline_s=60,
                          progress_deadline_s=120)
    spec = next_job(job, {"web": "reg.example/shop/web@" + D2}, {"stella.deployment.id": "d"}, update)
    assert not {"Version", "Stable", "JobModifyIndex", "ModifyIndex", "CreateIndex", "Status"} & set(spec)
    group = spec["TaskGroups"][0]
    web, router = group["Tasks"]
    assert web["Config"] == {**job["TaskGroups"][0]["Tasks"][0]["Config"], "image": "reg.example/shop/web@" + D2}
    assert router == job["TaskGroups"][0]["Tasks"][1]
    assert group["Update"] == {"HealthCheck": "checks", "Canary": 2, "MaxParallel": 3, "AutoRevert": False,
                               "AutoPromote": False, "MinHealthyTime": 5_000_000_000,
                               "HealthyDeadline": 60_000_000_000, "ProgressDeadline": 120_000_000_000}
    assert spec["Meta"] == {"owner": "shop", "stella.deployment.id": "d"}
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "reg.example/shop/web:1.0"  # input untouched


def test_next_job_names_a_missing_task_and_the_fix():
    with pytest.raises(ValueError, match="no docker task named api .*docker tasks: log-router, web.*settings.tasks"):
        next_job(_load("next_job", "job.json"), {"api": "x@" + D2}, {}, {})


def test_settings_refuse_unknown_keys_and_deadlines_nomad_would_refuse():
    with pytest.raises(ValidationError, match="extra"):
        NomadSettings.model_validate({"job": "shop", "auto_promote": True})
    with pytest.raises(ValidationError, match="progress_deadline_s must be 0 or at least healthy_deadline_s"):
        NomadSettings(job="shop", healthy_deadline_s=300, progress_deadline_s=60)
    assert NomadSettings(job="shop", progress_deadline_s=0).progress_deadline_s == 0
