"""ECS facts, rollout state and next revision: pure functions over recorded API outputs.

fixtures/facts and fixtures/next_revision were recorded from moto_server; fixtures/rollout_state
holds DescribeServices answers in the shapes of the ECS API reference (a real rollout's
deployments: PRIMARY + ACTIVE while rolling, circuit breaker failure and rollback), plus moto's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from stella_operators.targets.ecs import EcsSettings
from stella_operators.targets.ecs.facts import image_digest, next_revision, parse_facts, rollout_state, the_service

FIXTURES = Path(__file__).parent / "fixtures"
TD = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-web"
D2 = "sha256:" + "2" * 64


def _load(fact: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / fact / name).read_text())


@pytest.mark.parametrize(("name", "revision", "state"), [
    ("in_progress.json", ":8", "in_progress"),
    ("old_tasks_draining.json", ":8", "in_progress"),  # new one done, old tasks still draining
    ("completed.json", ":8", "completed"),
    ("failed.json", ":8", "failed"),
    ("rolled_back.json", ":8", "rolled_back"),
    ("rolled_back.json", ":7", "in_progress"),  # the revision ECS rolled back to is itself rolling
    ("moto_after_update.json", ":4", "completed"),  # moto: one PRIMARY record, service on our revision
    ("moto_after_update.json", ":3", "rolled_back"),
])
def test_rollout_state_of_a_revision(name, revision, state):
    svc = the_service(_load("rollout_state", name), "web")
    assert rollout_state(svc, TD + revision).state == state


def test_a_failed_or_rolled_back_rollout_says_why_in_ecs_words():
    failed = rollout_state(the_service(_load("rollout_state", "failed.json"), "web"), TD + ":8")
    assert "circuit breaker: tasks failed to start" in failed.reason
    back = rollout_state(the_service(_load("rollout_state", "rolled_back.json"), "web"), TD + ":8")
    assert back.reason.startswith(f"the service now runs {TD}:7") and "rolling back to deploymentId" in back.reason


def test_facts_read_digests_from_image_references_and_the_sticker_from_labels():
    svc = the_service(_load("facts", "describe_services.json"), "web")
    facts = parse_facts("shop-ecs", "shop", svc, _load("facts", "describe_task_definition.json"), {"api": "web"})
    assert set(facts.components) == {"api", "log-router"}
    assert facts.components["api"].digest == D2 and facts.components["api"].healthy is True
    assert facts.components["log-router"].digest is None  # tag only: no digest to trust
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"


def test_a_missing_service_is_named_with_ecs_reason():
    with pytest.raises(ValueError, match="ECS service 'nope' not found .*MISSING"):
        the_service(_load("facts", "describe_services_missing.json"), "nope")


def test_image_digest_accepts_only_a_full_sha256_reference():
    assert image_digest("reg:5000/a/b@" + D2) == D2
    assert image_digest("reg:5000/a/b:2.0") is None
    assert image_digest("reg/a@sha256:abc") is None


def test_next_revision_changes_only_the_images_and_adds_the_sticker_and_tags():
    described = _load("next_revision", "describe_task_definition.json")
    request = next_revision(described, {"log-router": "reg.example/infra/fluentbit@" + D2},
                            {"stella.app": "shop"}, {"stella.deployment.id": "dep-2"})
    assert not {"taskDefinitionArn", "revision", "status", "compatibilities"} & set(request)
    old = described["taskDefinition"]
    web, router = request["containerDefinitions"]
    assert router["image"] == "reg.example/infra/fluentbit@" + D2
    assert web["image"] == old["containerDefinitions"][0]["image"]
    assert {k: v for k, v in router.items() if k not in ("image", "dockerLabels")} == \
        {k: v for k, v in old["containerDefinitions"][1].items() if k not in ("image", "dockerLabels")}
    assert web["dockerLabels"]["team"] == "shop" and web["dockerLabels"]["stella.app"] == "shop"
    kept = ("cpu", "memory", "executionRoleArn")
    assert [request[k] for k in kept] == [old[k] for k in kept]
    assert {t["key"]: t["value"] for t in request["tags"]} == {"owner": "shop", "stella.deployment.id": "dep-2"}
    assert "dockerLabels" not in old["containerDefinitions"][1]  # the recorded answer itself is not modified


def test_settings_refuse_unknown_keys_and_a_rollback_without_circuit_breaker():
    with pytest.raises(ValidationError, match="extra"):
        EcsSettings.model_validate({"cluster": "c", "service": "s", "desired": 3})
    with pytest.raises(ValidationError, match="circuit_breaker_rollback needs circuit_breaker"):
        EcsSettings(cluster="c", service="s", circuit_breaker=False)
    assert EcsSettings(cluster="c", service="s", circuit_breaker=False, circuit_breaker_rollback=False)


def test_settings_refuse_keys_of_another_strategy():
    with pytest.raises(ValidationError, match="canary_percent only apply with strategy: CANARY"):
        EcsSettings(cluster="c", service="s", strategy="LINEAR", canary_percent=5)
    with pytest.raises(ValidationError, match="linear_step_percent only apply with strategy: LINEAR"):
        EcsSettings(cluster="c", service="s", linear_step_percent=10)
    with pytest.raises(ValidationError, match="bake_time_minutes does not apply to strategy: ROLLING"):
        EcsSettings(cluster="c", service="s", bake_time_minutes=5)
    assert EcsSettings(cluster="c", service="s", strategy="LINEAR", linear_step_percent=10).strategy == "LINEAR"
