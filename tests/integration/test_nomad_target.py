"""The `nomad` target against a FAKE Nomad agent (devstack/fakes/nomad.py: the HTTP endpoints the
target uses, written from Nomad's API documentation, on a real port), NOT against Nomad.

The fake places canaries beside the old allocations, waits for promotion, replaces allocations
max_parallel at a time, fails a deployment on an unhealthy allocation and auto-reverts.
"""

from __future__ import annotations

import json
from typing import Any

import nomad
import pytest

from devstack.fakes.nomad import FakeNomad
from stella_operators.estate.models import TargetConfig
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, DeployError, TargetPlan, VersionSticker
from stella_operators.targets.nomad import TARGET_TYPE, NomadSettings
from stella_operators.targets.nomad.target import NomadTarget
from tests.fixtures.cloud_peers import NOMAD_TOKEN

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
OLD_IMAGE = "reg.example/shop/web:1.0"
FAST = {"poll_interval_s": 0.05, "min_healthy_time_s": 0, "deployment_timeout_s": 20}


def _job() -> dict[str, Any]:
    return {"ID": "shop", "Name": "shop", "Type": "service", "Datacenters": ["dc1"], "Meta": {"owner": "shop"},
            "TaskGroups": [{"Name": "web", "Count": 3, "Update": {"HealthCheck": "checks"},
                            "Tasks": [{"Name": "web", "Driver": "docker",
                                       "Config": {"image": OLD_IMAGE, "ports": ["http"]},
                                       "Env": {"MODE": "prod"}, "Resources": {"CPU": 100, "MemoryMB": 128}},
                                      {"Name": "log-router", "Driver": "docker",
                                       "Config": {"image": "reg.example/infra/fluentbit@" + D1}}]}]}


def _plan(deployment: str = "dep-1", **digests: str) -> TargetPlan:
    comps = [ComponentDigest(name=n, repository="reg.example/shop/" + n, digest=d, tag="2.0")
             for n, d in digests.items()]
    sticker = VersionSticker(app="shop", release_id="r2", release_name="2.0", content_hash="h", components=comps,
                             deployment_id=deployment, promotion_id="p1", environment="prod", target="shop-nomad",
                             strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target="shop-nomad", deployment_id=deployment,
                      components=tuple(ComponentSpec(component=c) for c in comps), sticker=sticker)


def _target(fake: FakeNomad, token: str = NOMAD_TOKEN, **settings: Any) -> NomadTarget:
    client = nomad.Nomad(host="127.0.0.1", port=fake.port, token=token, timeout=5)
    return NomadTarget("shop-nomad", client, NomadSettings(job="shop", **{**FAST, **settings}))


def _running(fake: FakeNomad) -> list[tuple[int, bool]]:
    """(job version, canary) of each allocation the fake runs."""
    return sorted((a["JobVersion"], bool(a["DeploymentStatus"].get("Canary"))) for a in fake.state.allocs
                  if a["DesiredStatus"] == "run" and a["ClientStatus"] in ("pending", "running"))


def test_canaries_start_beside_the_old_allocations_and_commit_promotes_them(fake_nomad, monkeypatch):
    """Against the fake Nomad agent, not Nomad: built through an Airflow Connection (ACL token as
    its password); only the image changes, the update block comes from the settings."""
    fake_nomad.seed(_job())
    monkeypatch.setenv("AIRFLOW_CONN_NOMAD_PROD", json.dumps(
        {"conn_type": "stella_nomad", "host": "127.0.0.1", "port": fake_nomad.port, "password": NOMAD_TOKEN}))
    settings = {"job": "shop", "canary": 1, "max_parallel": 2, "auto_revert": True, **FAST}
    target = TARGET_TYPE.build(TargetConfig(name="shop-nomad", type="nomad", connection="nomad_prod",
                                            settings=settings), NomadSettings(**settings))
    assert isinstance(target, NomadTarget)
    plan = _plan(web=D2)

    prepared = target.prepare(plan)
    assert prepared.started == {"web": "shop@v1"} and prepared.to_retire == {"web": ["shop@v0"]}
    assert _running(fake_nomad) == [(0, False), (0, False), (0, False), (1, True)]  # canary beside the old ones
    assert "POST /v1/deployment/promote/" not in " ".join(fake_nomad.state.calls)

    target.commit(plan, prepared)
    assert _running(fake_nomad) == [(1, False), (1, False), (1, True)]
    job = fake_nomad.state.job("default", "shop")
    assert job["Stable"] and job["Version"] == 1
    web, router = job["TaskGroups"][0]["Tasks"]
    assert web["Config"] == {"image": "reg.example/shop/web@" + D2, "ports": ["http"]}
    assert web["Env"] == {"MODE": "prod"} and web["Resources"] == {"CPU": 100, "MemoryMB": 128}
    assert router["Config"]["image"] == "reg.example/infra/fluentbit@" + D1
    assert job["TaskGroups"][0]["Update"] == {
        "HealthCheck": "checks", "Canary": 1, "MaxParallel": 2, "AutoRevert": True, "AutoPromote": False,
        "MinHealthyTime": 0, "HealthyDeadline": 300_000_000_000, "ProgressDeadline": 600_000_000_000}
    assert job["Meta"]["owner"] == "shop" and job["Meta"]["stella.previous-version"] == "0"

    facts = target.facts("shop")
    assert facts.components["web"].digest == D2 and facts.components["web"].healthy is True
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"
    again = target.prepare(plan)  # a re-run converges: no new version
    assert not again.changed and fake_nomad.state.job("default", "shop")["Version"] == 1


def test_an_unhealthy_canary_fails_the_deployment_and_nomad_auto_reverts(fake_nomad):
    """Against the fake Nomad agent, not Nomad: the old allocations never stopped."""
    fake_nomad.seed(_job())
    fake_nomad.state.bad_images.add("reg.example/shop/web@" + D2)
    target = _target(fake_nomad, auto_revert=True)
    with pytest.raises(DeployError, match="Failed due to unhealthy allocations - rolling back to job version 0") as err:
        target.prepare(_plan(web=D2))
    target.discard(_plan(web=D2), err.value.prepared)  # nothing left to do: Nomad reverted
    job = fake_nomad.state.job("default", "shop")
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == OLD_IMAGE
    assert _running(fake_nomad) == [(2, False), (2, False), (2, False)]  # the old allocations, updated in place
    assert not any("revert" in c for c in fake_nomad.state.calls)


def test_discard_after_healthy_canaries_fails_the_deployment_and_reverts_the_job(fake_nomad):
    """Against the fake Nomad agent, not Nomad: another target failed, so this one is discarded
    (auto_revert off: stella reverts to the version it recorded in the job's Meta)."""
    fake_nomad.seed(_job())
    target = _target(fake_nomad, auto_revert=False)
    plan = _plan(web=D2)
    prepared = target.prepare(plan)
    target.discard(plan, prepared)
    calls = " ".join(fake_nomad.state.calls)
    assert "POST /v1/deployment/fail/" in calls and "POST /v1/job/shop/revert" in calls
    job = fake_nomad.state.job("default", "shop")
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == OLD_IMAGE and job["Stable"]
    assert _running(fake_nomad) == [(2, False), (2, False), (2, False)]
    assert target.facts("shop").components["web"].digest is None  # the tag-pinned original again


def test_restore_after_commit_reverts_from_the_jobs_own_meta_and_is_idempotent(fake_nomad):
    """Against the fake Nomad agent, not Nomad: a fresh target (another process) restores."""
    fake_nomad.seed(_job())
    plan = _plan(web=D2)
    first = _target(fake_nomad, canary=0, max_parallel=3)
    prepared = first.prepare(plan)  # no canaries: the rolling update completes in prepare
    first.commit(plan, prepared)
    assert fake_nomad.state.job("default", "shop")["Version"] == 1
    fresh = _target(fake_nomad)
    fresh.restore(plan, {"web": None})
    job = fake_nomad.state.job("default", "shop")
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == OLD_IMAGE
    fresh.restore(plan, {"web": None})
    assert fake_nomad.state.job("default", "shop")["Version"] == 2
    assert "POST /v1/deployment/promote/" not in " ".join(fake_nomad.state.calls)


def test_a_wrong_token_and_a_missing_task_are_named(fake_nomad):
    """Against the fake Nomad agent, not Nomad."""
    fake_nomad.seed(_job())
    with pytest.raises(DeployError, match="cannot read job 'shop': HTTP 403: Permission denied"):
        _target(fake_nomad, token="wrong").facts("shop")
    with pytest.raises(DeployError, match="no docker task named api .*settings.tasks"):
        _target(fake_nomad).prepare(_plan(api=D2))
    assert fake_nomad.state.job("default", "shop")["Version"] == 0
