"""Strategies through the promotion services (SQLite ledger, in-memory hosts): rolling batch by
batch under one lock, a failed batch rolling every earlier batch back, pause / continue, a retried
batch after a dead worker, and blue-green verification and switch-back."""

from __future__ import annotations

import pytest

from stella_operators.estate.models import Estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion import strategies as strategies_module
from stella_operators.promotion.batches import deploy_batch
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from stella_operators.promotion.strategies import BATCH_STARTED, SWITCH, batch_count
from stella_operators.targets.contract import VersionSticker
from tests.unit.deploy.memory import RouterInMemory
from tests.unit.promotion.fakes import FakeHost, Workload, World, digest

NAMES = ("h1", "h2", "h3", "h4", "h5")


class Fleet(World):
    """World with five hosts and the given strategy settings on environment prod."""

    def __init__(self, tmp_path, clock, groups: dict[str, str] | None = None, **env):
        self.estate = Estate.model_validate({
            "approver_groups": [{"name": "rm", "users": ["bob"]}],
            "apps": [{"name": "shop", "components": [{"name": "web", "repository": "reg.local/shop/web"}]}],
            "environments": [{"name": "prod", "requires": [], "targets": [
                {"name": n, "type": "fake", "connection": f"c_{n}", **({"group": groups[n]} if groups else {})}
                for n in NAMES], **env}]})
        self.ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
        self.key = SigningKey.generate()
        self.hosts = {n: FakeHost(n) for n in NAMES}
        self.n = 0

    def deploy_all(self, promo, slept=None):
        """What the DAG does: batch 1, then each later batch task in order."""
        out = deploy_promotion(self.estate, self.ledger, self.key, promo.id, self.targets, batch=0)
        for k in range(1, batch_count(self.estate.environment("prod"))):
            out = deploy_batch(self.estate, self.ledger, self.key, promo.id, self.targets, k,
                               sleep=(slept.append if slept is not None else lambda s: None))
        return out

    def verify(self, promo):
        return verify_promotion(self.estate, self.ledger, self.key, promo.id, self.targets)

    def status(self, promo) -> str:
        return str(self.ledger.get_promotion(promo.id).status)


ROLLING = {"strategy": "rolling", "rolling": {"batch_size": 2, "pause_s": 5}}


@pytest.fixture
def fleet(tmp_path, clock):
    f = Fleet(tmp_path, clock, **ROLLING)
    yield f
    f.ledger.close()


def ship_all(fleet, n):
    promo = fleet.approved(n)
    fleet.deploy_all(promo)
    fleet.verify(promo)
    assert fleet.status(promo) == "deployed"
    return promo


def fail_on(host: FakeHost):
    def boom(plan):
        raise RuntimeError(f"{host.name}: container unhealthy")
    host.on_prepare = boom


def test_rolling_runs_batch_by_batch_under_one_lock_and_pauses_between(fleet):
    ship_all(fleet, 1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    assert fleet.status(promo) == "deploying"
    assert fleet.running() == {"h1": {"web": digest(2)}, "h2": {"web": digest(2)}, "h3": {"web": digest(1)},
                               "h4": {"web": digest(1)}, "h5": {"web": digest(1)}}
    assert fleet.ledger.deploy_lock("shop", "prod").promotion_id == promo.id   # held between batch tasks
    slept = []
    for k in (1, 2):
        deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, k, sleep=slept.append)
    assert slept == [5, 5]
    assert fleet.status(promo) == "verifying"
    fleet.verify(promo)
    assert fleet.status(promo) == "deployed"
    assert all(v == {"web": digest(2)} for v in fleet.running().values())
    [dep] = fleet.ledger.deployments_for(promo.id)
    batches = [e.detail for e in fleet.ledger.audit_events(f"deployment:{dep.id}") if e.action == BATCH_STARTED]
    assert batches == [{"batch": 0, "targets": ["h1", "h2"]}, {"batch": 1, "targets": ["h3", "h4"]},
                       {"batch": 2, "targets": ["h5"]}]


def test_a_failure_in_batch_2_rolls_batch_1_back(fleet):
    ship_all(fleet, 1)
    fail_on(fleet.hosts["h4"])
    promo = fleet.approved(2)
    with pytest.raises(DeploymentFailed, match="batch 2 failed.*h4: container unhealthy.*rolled back"):
        fleet.deploy_all(promo)
    assert all(v == {"web": digest(1)} for v in fleet.running().values()), fleet.running()
    assert fleet.status(promo) == "rolled_back"
    assert "prepare" not in fleet.hosts["h5"].calls[-3:]       # batch 3 never ran
    assert "rollback" in fleet.evidence_types(promo.id)
    assert fleet.ledger.deploy_lock("shop", "prod") is None


def test_a_batch_retried_after_its_worker_died_rolls_everything_back(fleet):
    ship_all(fleet, 1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    # batch 2's worker dies after its start was recorded and h3 switched
    [dep] = fleet.ledger.deployments_for(promo.id)
    fleet.ledger.audit("stella", BATCH_STARTED, f"deployment:{dep.id}", {"batch": 1, "targets": ["h3", "h4"]})
    fleet.hosts["h3"].workloads[0].running = False
    fleet.hosts["h3"].workloads.append(Workload("shop", "web", digest(2), dep.id, True))
    with pytest.raises(DeploymentFailed, match="batch 2 was interrupted.*every host was rolled back"):
        deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)
    assert all(v == {"web": digest(1)} for v in fleet.running().values()), fleet.running()
    assert fleet.status(promo) == "rolled_back"
    with pytest.raises(DeploymentFailed, match="rolled_back; batch 2 has nothing to do"):
        deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)


def test_a_recorded_batch_retried_changes_nothing(fleet):
    ship_all(fleet, 1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1, sleep=lambda s: None)
    calls = [list(h.calls) for h in fleet.hosts.values()]
    out = deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1, sleep=lambda s: None)
    assert [t.target for t in out.targets] == ["h3", "h4"] and out.status == "deployed"
    assert [list(h.calls) for h in fleet.hosts.values()] == calls


def test_a_batch_cannot_run_before_the_one_before_it(fleet):
    ship_all(fleet, 1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    with pytest.raises(DeploymentFailed, match="batch 3 started before h3, h4"):
        deploy_batch(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 2, sleep=lambda s: None)
    assert all(v == {"web": digest(1)} for v in fleet.running().values())


def test_pause_keeps_batch_1_and_records_what_is_left(tmp_path, clock):
    fleet = Fleet(tmp_path, clock, **ROLLING, on_failure="pause")
    ship_all(fleet, 1)
    fail_on(fleet.hosts["h3"])
    promo = fleet.approved(2)
    with pytest.raises(DeploymentFailed, match="paused.*left for a human: h3, h4, h5"):
        fleet.deploy_all(promo)
    assert [fleet.running()[n]["web"] for n in NAMES] == [digest(2), digest(2), digest(1), digest(1), digest(1)]
    assert fleet.status(promo) == "failed"
    last = [e for e in fleet.ledger.audit_events(f"promotion:{promo.id}") if e.action == "promotion.transition"][-1]
    assert last.detail["detail"]["paused"] is True and last.detail["detail"]["pending"] == ["h3", "h4", "h5"]
    [record] = [e for e in fleet.ledger.evidence_for(promotion_id=promo.id)
                if e.content.get("status") == "paused"]
    assert record.content["pending"] == ["h3", "h4", "h5"] and record.content["batch"] == 2
    assert fleet.ledger.deploy_lock("shop", "prod") is None
    fleet.ledger.close()


def test_continue_skips_the_failed_host_and_verification_leaves_it_out(tmp_path, clock):
    fleet = Fleet(tmp_path, clock, **ROLLING, on_failure="continue")
    ship_all(fleet, 1)
    fail_on(fleet.hosts["h3"])
    promo = fleet.approved(2)
    fleet.deploy_all(promo)
    assert [fleet.running()[n]["web"] for n in NAMES] == [digest(2), digest(2), digest(1), digest(2), digest(2)]
    fleet.verify(promo)
    assert fleet.status(promo) == "deployed"
    verified = [e for e in fleet.ledger.evidence_for(promotion_id=promo.id) if e.content.get("status") == "verified"]
    assert list(verified[0].content["not_checked"]) == ["h3"]
    assert "skipped" in verified[0].content["not_checked"]["h3"]
    fleet.ledger.close()


def test_a_single_batch_rolling_environment_runs_in_one_call(tmp_path, clock):
    fleet = Fleet(tmp_path, clock, strategy="rolling", rolling={"batch_percent": 100})
    assert batch_count(fleet.estate.environment("prod")) == 1
    promo = fleet.approved(1)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    assert fleet.status(promo) == "verifying"
    fleet.ledger.close()


GROUPS = {"h1": "blue", "h2": "blue", "h3": "green", "h4": "green", "h5": "green"}
BLUE_GREEN = {"strategy": "blue_green",
              "blue_green": {"router": {"type": "haproxy", "settings": {"socket": "/x", "backend": "web"}},
                             "switch_back_s": 60}}


@pytest.fixture
def blue_green(tmp_path, clock, monkeypatch):
    fleet = Fleet(tmp_path, clock, groups=GROUPS, **BLUE_GREEN)
    router = RouterInMemory({"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0})
    # The router is the peer here (the real HAProxy runs in tests/integration/test_strategies_lab.py).
    monkeypatch.setattr(strategies_module, "router_of", lambda env: router)
    yield fleet, router
    fleet.ledger.close()


def test_blue_green_verifies_the_new_set_and_keeps_the_old_one(blue_green):
    fleet, router = blue_green
    for n in ("h1", "h2"):
        fleet.hosts[n].workloads.append(Workload("shop", "web", digest(1), "dep-0", True))
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    assert router.distribution() == {"blue": 0, "green": 100}
    [dep] = fleet.ledger.deployments_for(promo.id)
    [switch] = [e.detail for e in fleet.ledger.audit_events(f"deployment:{dep.id}") if e.action == SWITCH]
    assert switch == {"group": "green", "previous_group": "blue"}
    fleet.verify(promo)
    assert fleet.status(promo) == "deployed"
    assert fleet.running()["h1"] == {"web": digest(1)} and fleet.running()["h3"] == {"web": digest(2)}


def test_blue_green_verification_failure_sends_traffic_back_first(blue_green):
    fleet, router = blue_green
    for n in ("h1", "h2"):
        fleet.hosts[n].workloads.append(Workload("shop", "web", digest(1), "dep-0", True))
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    fleet.hosts["h4"].workloads[-1].digest = digest(9)   # changed behind our back
    with pytest.raises(DeploymentFailed, match="verification failed.*h4 runs"):
        fleet.verify(promo)
    assert router.distribution() == {"blue": 100, "green": 0}
    assert fleet.running()["h3"] == {} and fleet.running()["h1"] == {"web": digest(1)}
    assert fleet.status(promo) == "rolled_back"


def test_the_previous_set_is_retired_after_the_window_and_only_then(blue_green, clock):
    from datetime import timedelta

    from stella_operators.promotion.retire import retire_due_at, retire_previous_set

    fleet, router = blue_green
    rel = fleet.release(1)
    for n in ("h1", "h2"):  # the blue set, started by an earlier deployment (named in its sticker)
        sticker = VersionSticker(app="shop", release_id=rel.id, release_name=rel.name, content_hash=rel.content_hash,
                                 components=list(rel.components), deployment_id="dep-0", promotion_id="p-0",
                                 environment="prod", target=n, strategy="blue_green", deployed_at="2026-03-01")
        fleet.hosts[n].workloads.append(Workload("shop", "web", digest(1), "dep-0", True, sticker))
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    fleet.verify(promo)
    assert retire_due_at(fleet.estate, fleet.ledger, promo.id) == clock.now + timedelta(seconds=60)
    # a newer promotion deploying here holds the lock: the idle set is its business
    other = fleet.approved(3)
    assert fleet.ledger.acquire_deploy_lock("shop", "prod", other.id, "other").acquired
    res = retire_previous_set(fleet.estate, fleet.ledger, promo.id, fleet.targets)
    assert res.removed == [] and "is deploying here now" in res.skipped["h1"]
    fleet.ledger.release_deploy_lock("shop", "prod", other.id)
    res = retire_previous_set(fleet.estate, fleet.ledger, promo.id, fleet.targets)
    assert res.group == "blue" and res.removed == ["h1", "h2"]
    assert fleet.running()["h1"] == {} and fleet.running()["h3"] == {"web": digest(2)}
    assert router.healthy("blue") == {"h1": False, "h2": False} and router.distribution()["green"] == 100
