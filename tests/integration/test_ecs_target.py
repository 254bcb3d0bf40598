"""The `ecs` target against moto's ECS server (moto_server on 127.0.0.1), NOT against AWS.

moto keeps the service's first deployment record on update_service (no new deployment, no
circuit breaker); a service whose desiredCount exceeds the server's MOTO_ECS_SERVICE_RUNNING (2
here) never completes its rollout, which is how a failing rollout is played.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from devstack.moto import MotoServer
from stella_operators.estate.models import TargetConfig
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, DeployError, TargetPlan, VersionSticker
from stella_operators.targets.diff import diff
from stella_operators.targets.ecs import TARGET_TYPE, EcsSettings
from stella_operators.targets.ecs.target import EcsTarget

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
REGION = "eu-west-1"


def _client(moto: MotoServer) -> Any:
    return boto3.client("ecs", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="test",
                        aws_secret_access_key="test")


def _service(moto: MotoServer, desired: int = 2) -> tuple[str, str, str]:
    """A cluster and a service on a tag-pinned revision with settings a deploy must keep."""
    ecs = _client(moto)
    cluster, service = f"c-{uuid.uuid4().hex[:6]}", "web"
    ecs.create_cluster(clusterName=cluster)
    td = ecs.register_task_definition(
        family=f"shop-{cluster}", cpu="256", memory="512", executionRoleArn="arn:aws:iam::123456789012:role/exec",
        containerDefinitions=[
            {"name": "web", "image": "reg.example/shop/web:1.0", "memory": 256,
             "portMappings": [{"containerPort": 8080, "hostPort": 0}],
             "environment": [{"name": "MODE", "value": "prod"}], "dockerLabels": {"team": "shop"}},
            {"name": "log-router", "image": "reg.example/infra/fluentbit@" + D1, "memory": 64},
        ],
        tags=[{"key": "owner", "value": "shop"}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=td, desiredCount=desired)
    return cluster, service, td


def _plan(deployment: str = "dep-1", **digests: str) -> TargetPlan:
    comps = [ComponentDigest(name=n, repository="reg.example/shop/" + n, digest=d, tag="2.0")
             for n, d in digests.items()]
    sticker = VersionSticker(app="shop", release_id="r2", release_name="2.0", content_hash="h", components=comps,
                             deployment_id=deployment, promotion_id="p1", environment="prod", target="shop-ecs",
                             strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target="shop-ecs", deployment_id=deployment,
                      components=tuple(ComponentSpec(component=c) for c in comps), sticker=sticker)


def _target(moto: MotoServer, cluster: str, service: str) -> EcsTarget:
    return EcsTarget("shop-ecs", _client(moto), EcsSettings(cluster=cluster, service=service, poll_interval_s=0.1))


def _target_through_airflow(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> EcsTarget:
    """Built as an estate target is: the aws Connection (endpoint_url -> moto) through EcsHook."""
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_AWS", json.dumps({
        "conn_type": "aws", "login": "test", "password": "test",
        "extra": {"endpoint_url": moto.url, "region_name": REGION}}))
    config = TargetConfig(name="shop-ecs", type="ecs", connection="moto_aws", settings=settings)
    target = TARGET_TYPE.build(config, TARGET_TYPE.settings.model_validate(settings))
    assert isinstance(target, EcsTarget)
    return target


def test_a_release_rolls_the_service_to_a_digest_pinned_copy_of_its_task_definition(moto_ecs, monkeypatch):
    """Runs against moto_server, not AWS: register a revision that differs only in the images
    (plus the sticker), update the service with the settings' deployment configuration, wait."""
    cluster, service, before = _service(moto_ecs)
    target = _target_through_airflow(moto_ecs, monkeypatch, cluster=cluster, service=service,
                                     minimum_healthy_percent=50, maximum_percent=150,
                                     circuit_breaker=True, circuit_breaker_rollback=True, poll_interval_s=0.1)
    plan = _plan(web=D2)
    assert diff(target.facts("shop"), plan).change("web").action == "replace"  # tag-pinned: no trusted digest

    prepared = target.prepare(plan)
    target.commit(plan, prepared)

    ecs = _client(moto_ecs)
    svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    new = svc["taskDefinition"]
    assert new != before and prepared.started == {"web": new} and prepared.to_retire == {"web": [before]}
    assert svc["deploymentConfiguration"] == {"minimumHealthyPercent": 50, "maximumPercent": 150, "strategy": "ROLLING",
                                              "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    old_td = ecs.describe_task_definition(taskDefinition=before)["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=new, include=["TAGS"])
    td = described["taskDefinition"]
    web, router = td["containerDefinitions"]
    assert web["image"] == "reg.example/shop/web@" + D2
    assert router["image"] == "reg.example/infra/fluentbit@" + D1  # not in the release: untouched
    old_web = old_td["containerDefinitions"][0]
    for key in ("memory", "portMappings", "environment"):
        assert web[key] == old_web[key], key
    assert web["dockerLabels"]["team"] == "shop"
    assert json.loads(web["dockerLabels"]["stella.version.json"])["deployment_id"] == "dep-1"
    assert (td["cpu"], td["memory"], td["executionRoleArn"]) == ("256", "512", old_td["executionRoleArn"])
    tags = {t["key"]: t["value"] for t in described["tags"]}
    assert tags == {"owner": "shop", "stella.deployment.id": "dep-1", "stella.previous-task-definition": before}

    facts = target.facts("shop")
    assert facts.components["web"].digest == D2 and facts.components["web"].healthy is True
    assert facts.components["log-router"].digest == D1
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"
    # a re-run converges: nothing to change, no new revision
    again = target.prepare(plan)
    assert not again.changed and again.unchanged == ["web"]
    assert ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"] == new


def test_restore_puts_the_service_back_on_the_previous_task_definition(moto_ecs):
    """Runs against moto_server, not AWS: restore reads the revision's own tags, so a process that
    never saw the deployment can undo it; a second restore changes nothing."""
    cluster, service, before = _service(moto_ecs)
    target = _target(moto_ecs, cluster, service)
    plan = _plan(web=D2)
    target.commit(plan, target.prepare(plan))
    deployed = target.service()["taskDefinition"]

    fresh = _target(moto_ecs, cluster, service)
    fresh.restore(plan, {"web": None})
    assert fresh.service()["taskDefinition"] == before
    assert _client(moto_ecs).describe_task_definition(taskDefinition=deployed)["taskDefinition"]["status"] == "INACTIVE"
    fresh.restore(plan, {"web": None})
    assert fresh.service()["taskDefinition"] == before
    fresh.restore(_plan("another-deployment", web=D2), {"web": None})  # not this deployment's revision: untouched
    assert fresh.service()["taskDefinition"] == before


def test_a_rollout_that_does_not_complete_in_time_fails_and_discard_switches_back(moto_ecs):
    """Runs against moto_server, not AWS: 3 desired tasks where moto runs 2 never completes."""
    cluster, service, before = _service(moto_ecs, desired=3)
    target = EcsTarget("shop-ecs", _client(moto_ecs),
                       EcsSettings(cluster=cluster, service=service, rollout_timeout_s=0.5, poll_interval_s=0.1))
    plan = _plan(web=D2)
    with pytest.raises(DeployError, match="not completed after 0.5s: 2/3 tasks running") as err:
        target.prepare(plan)
    prepared = err.value.prepared
    assert prepared is not None and prepared.started
    failed = prepared.started["web"]
    assert target.service()["taskDefinition"] == failed
    with pytest.raises(DeployError, match=f"rollout of {before} not completed"):
        target.discard(plan, prepared)  # moto: the old revision cannot "complete" either...
    assert target.service()["taskDefinition"] == before  # ...but the service is back on it


def test_a_component_missing_from_the_task_definition_is_named_with_the_fix(moto_ecs):
    """Runs against moto_server, not AWS."""
    cluster, service, before = _service(moto_ecs)
    target = _target(moto_ecs, cluster, service)
    with pytest.raises(DeployError, match="no container named api .*settings.containers"):
        target.prepare(_plan(api=D2))
    assert target.service()["taskDefinition"] == before
    mapped = EcsTarget("shop-ecs", _client(moto_ecs),
                       EcsSettings(cluster=cluster, service=service, containers={"api": "web"}, poll_interval_s=0.1))
    mapped.commit(_plan(api=D2), mapped.prepare(_plan(api=D2)))
    assert mapped.facts("shop").components["api"].digest == D2


def test_the_services_own_canary_strategy_comes_from_the_settings(moto_ecs):
    """Runs against moto_server, not AWS (which echoes the configuration; it shifts no traffic)."""
    cluster, service, _ = _service(moto_ecs)
    target = EcsTarget("shop-ecs", _client(moto_ecs), EcsSettings(
        cluster=cluster, service=service, strategy="CANARY", bake_time_minutes=15, canary_percent=10.0,
        canary_bake_time_minutes=5, circuit_breaker=False, circuit_breaker_rollback=False, poll_interval_s=0.1))
    plan = _plan(web=D2)
    target.commit(plan, target.prepare(plan))
    assert target.service()["deploymentConfiguration"] == {
        "minimumHealthyPercent": 100, "maximumPercent": 200, "strategy": "CANARY", "bakeTimeInMinutes": 15,
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
        "deploymentCircuitBreaker": {"enable": False, "rollback": False}}
