"""A/B by target groups through the promotion services (SQLite ledger, in-memory hosts): stage 1 is
the promotion's deploy step, each later stage its own call under the same lock; stage events in
the audit log; verification leaves group A out; failures and interrupted stages roll back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import pytest

from stella_operators.api.views import board
from stella_operators.drift.service import check_drift
from stella_operators.estate.models import Estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.ab import STAGE_ENDED, STAGE_FAILED, STAGE_STARTED
from stella_operators.promotion.ab_stages import deploy_stage
from stella_operators.promotion.recovery import roll_back_promotion
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from stella_operators.promotion.strategies import batch_count
from stella_operators.targets.contract import TargetFacts, TargetPlan
from tests.unit.promotion.fakes import FakeHost, Workload, World, digest

GROUPS = {"a1": "a", "a2": "a", "b1": "b", "b2": "b"}


@dataclass
class Worker(FakeHost):
    """FakeHost whose workloads report healthy, and which can park them (stop, keep)."""

    def facts(self, app: str) -> TargetFacts:
        facts = super().facts(app)
        for rc in facts.components.values():
            rc.healthy = True
        return facts

    on_restore: object = None       # callable() told when restore starts (order across hosts)

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        if callable(self.on_restore):
            self.on_restore()
        super().restore(plan, previous)

    def park(self, plan: TargetPlan) -> None:
        self.calls.append("park")
        for w in self.workloads:
            if w.app == plan.app:
                w.running = False


class Fleet(World):
    def __init__(self, tmp_path, clock, **ab):
        self.estate = Estate.model_validate({
            "apps": [{"name": "shop", "components": [{"name": "web", "repository": "reg.local/shop/web"}]}],
            "environments": [{"name": "prod", "requires": [], "strategy": "ab",
                              "ab": {"groups": ["a", "b"], "stages": [50, 100], "stage_wait_s": 0, **ab},
                              "targets": [{"name": n, "type": "fake", "connection": f"c_{n}", "group": g}
                                          for n, g in GROUPS.items()]}]})
        self.ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
        self.key = SigningKey.generate()
        self.hosts = {n: Worker(n) for n in GROUPS}
        self.n = 0

    def deploy_all(self, promo):
        """What the DAG does: stage 1 (the promotion's deploy step), then each later stage task."""
        deploy_promotion(self.estate, self.ledger, self.key, promo.id, self.targets, batch=0)
        for k in range(1, batch_count(self.estate.environment("prod"))):
            deploy_stage(self.estate, self.ledger, self.key, promo.id, self.targets, k)

    def ship(self, n):
        promo = self.approved(n)
        self.deploy_all(promo)
        verify_promotion(self.estate, self.ledger, self.key, promo.id, self.targets)
        assert self.status(promo) == "deployed"
        return promo

    def status(self, promo) -> str:
        return str(self.ledger.get_promotion(promo.id).status)

    def events(self, promo, action):
        [dep] = self.ledger.deployments_for(promo.id)
        return [e.detail for e in self.ledger.audit_events(f"deployment:{dep.id}") if e.action == action]


@pytest.fixture
def fleet(tmp_path, clock):
    f = Fleet(tmp_path, clock)
    yield f
    f.ledger.close()


R1, R2 = {"web": digest(1)}, {"web": digest(2)}


def test_the_release_moves_from_the_group_running_the_app_to_the_other_stage_by_stage(fleet):
    first = fleet.ship(1)          # nobody ran the app: the first group listed (a) receives it
    assert fleet.running() == {"a1": R1, "a2": R1, "b1": {}, "b2": {}}
    assert [(e["group_a"], e["group_b"]) for e in fleet.events(first, STAGE_STARTED)] == [(None, "a")] * 2

    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    assert fleet.status(promo) == "deploying"
    assert fleet.running() == {"a1": {}, "a2": R1, "b1": R2, "b2": {}}
    assert fleet.ledger.deploy_lock("shop", "prod").promotion_id == promo.id   # held between stage tasks
    deploy_stage(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)
    assert fleet.status(promo) == "verifying"
    assert fleet.running() == {"a1": {}, "a2": {}, "b1": R2, "b2": R2}
    verify_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    assert fleet.status(promo) == "deployed"
    started = fleet.events(promo, STAGE_STARTED)
    assert [(e["stage"], e["share"], e["up"], e["down"], e["group_a"], e["group_b"]) for e in started] == [
        (0, 50, ["b1"], ["a1"], "a", "b"), (1, 100, ["b2"], ["a2"], "a", "b")]
    assert [(e["stage"], e["status"], e["healthy_share"]) for e in fleet.events(promo, STAGE_ENDED)] == [
        (0, "done", 100), (1, "done", 100)]
    [dep] = fleet.ledger.deployments_for(promo.id)
    assert {t.target: t.status for t in dep.targets} == {"a1": "stopped", "a2": "stopped", "b1": "deployed",
                                                         "b2": "deployed"}
    verified = [e for e in fleet.ledger.evidence_for(promotion_id=promo.id) if e.content.get("status") == "verified"]
    assert sorted(verified[0].content["not_checked"]) == ["a1", "a2"]
    assert "stopped by the A/B deployment" in verified[0].content["not_checked"]["a1"]
    # A's workloads were stopped, not removed: the next A/B can move the app back
    assert [w.running for w in fleet.hosts["a1"].workloads] == [False]
    third = fleet.ship(3)
    assert fleet.running() == {"a1": {"web": digest(3)}, "a2": {"web": digest(3)}, "b1": {}, "b2": {}}
    assert fleet.events(third, STAGE_STARTED)[0]["group_a"] == "b"


def test_a_failing_stage_2_brings_group_a_back_and_takes_b_down(fleet):
    fleet.ship(1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)

    def boom(plan):
        raise RuntimeError("b2: container unhealthy")
    fleet.hosts["b2"].on_prepare = boom
    with pytest.raises(DeploymentFailed, match=r"A/B stage 2 failed: stage 2 of 2 \(100 %\): starting b2 on b "
                                               r"failed: .*b2: container unhealthy.*every host was rolled back"):
        deploy_stage(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)
    assert fleet.running() == {"a1": R1, "a2": R1, "b1": {}, "b2": {}}
    assert fleet.status(promo) == "rolled_back"
    [failed] = fleet.events(promo, STAGE_FAILED)
    assert failed["stage"] == 1 and "b2: container unhealthy" in failed["error"]
    assert "rollback" in fleet.evidence_types(promo.id)
    assert fleet.ledger.deploy_lock("shop", "prod") is None


def test_a_stage_retried_after_its_worker_died_rolls_everything_back(fleet):
    fleet.ship(1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    # stage 2's worker dies after its start was recorded and b2 started
    [dep] = fleet.ledger.deployments_for(promo.id)
    fleet.ledger.audit("stella", STAGE_STARTED, f"deployment:{dep.id}", {"stage": 1})
    fleet.hosts["b2"].workloads.append(Workload("shop", "web", digest(2), dep.id, True))
    with pytest.raises(DeploymentFailed, match="stage 2 was interrupted.*every host was rolled back"):
        deploy_stage(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)
    assert fleet.running() == {"a1": R1, "a2": R1, "b1": {}, "b2": {}}
    assert fleet.status(promo) == "rolled_back"


def test_a_completed_stage_retried_changes_nothing(fleet):
    fleet.ship(1)
    promo = fleet.approved(2)
    fleet.deploy_all(promo)
    calls = [list(h.calls) for h in fleet.hosts.values()]
    deploy_stage(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, 1)
    assert [list(h.calls) for h in fleet.hosts.values()] == calls


def test_both_groups_running_the_app_is_refused_before_anything_changes(fleet):
    fleet.ship(1)
    fleet.hosts["b1"].workloads.append(Workload("shop", "web", digest(1), "by-hand", True))
    promo = fleet.approved(2)
    with pytest.raises(DeploymentFailed, match=r"both groups run the app \(a: a1, a2; b: b1\)"):
        deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    assert fleet.running() == {"a1": R1, "a2": R1, "b1": R1, "b2": {}}
    assert fleet.status(promo) == "failed"
    assert fleet.ledger.deploy_lock("shop", "prod") is None


def test_the_drift_check_expects_group_a_idle_after_an_a_b_deployment(fleet, clock):
    fleet.ship(1)
    clock.now += timedelta(minutes=5)   # the ledger orders promotions by time
    fleet.ship(2)
    report = check_drift(fleet.estate, fleet.ledger, "shop", "prod", fleet.targets)
    assert not report.drifted, report.message()
    # a worker started by hand on the idle group is drift, naming why the host must be idle
    fleet.hosts["a1"].workloads[-1].running = True
    report = check_drift(fleet.estate, fleet.ledger, "shop", "prod", fleet.targets)
    assert [(f.target, f.kind) for f in report.findings] == [("a1", "unmanaged")]
    assert "stopped by the A/B deployment" in report.findings[0].detail


def test_the_releases_board_shows_group_a_idle_not_degraded(fleet, clock):
    fleet.ship(1)
    clock.now += timedelta(minutes=5)   # the ledger orders promotions and results by time
    fleet.ship(2)
    cell = board(fleet.estate, fleet.ledger)["deployed"]["shop"]["prod"]
    assert cell["name"] == "shop-2.0.0" and not cell["degraded"], cell["problems"]
    assert {t["target"]: (t["release"], t["result"]) for t in cell["targets"]} == {
        "a1": (None, "stopped"), "a2": (None, "stopped"), "b1": ("shop-2.0.0", "deployed"),
        "b2": ("shop-2.0.0", "deployed")}


def test_recovery_from_a_dead_stage_brings_group_a_back_before_b_stops(fleet):
    fleet.ship(1)
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, batch=0)
    log: list[str] = []

    def restoring(name: str) -> None:
        log.append(f"start {name}")
        if name.startswith("a"):
            time.sleep(0.3)          # A's workers take a while to come back
        log.append(f"end {name}")

    for name, host in fleet.hosts.items():
        host.on_restore = lambda name=name: restoring(name)
    report = roll_back_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets,
                                 reason="stage 2's task failed and left the deployment unfinished")
    assert report.ok and fleet.running() == {"a1": R1, "a2": R1, "b1": {}, "b2": {}}
    last_a_back = max(log.index(f"end {n}") for n in ("a1", "a2"))
    first_b = min(log.index(f"start {n}") for n in ("b1", "b2"))
    assert last_a_back < first_b, log
