"""An approval binds to the deployment plan the approver was shown: a stale plan hash is refused
(the plan changed: reload), a counted approval seals the plan in its evidence, a rejection stands
whatever plan it saw, an unreadable host may be approved as "unknown", and the plan shown when the
wait began is recorded once. Real SQLite ledger, in-memory hosts."""

from __future__ import annotations

import pytest

from stella_operators.approvals import Approver
from stella_operators.approvals.plans import approved_plans, live_plan, plan_shown, record_plan_shown
from stella_operators.approvals.policy import PLAN_CHANGED
from stella_operators.approvals.service import submit_approval
from stella_operators.evidence import verify_evidence
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import Workload, World, digest


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.hosts["a"].workloads.append(Workload("shop", "web", digest(1), "dep-1", True))
    yield w
    w.ledger.close()


def waiting(w: World, n: int = 2) -> str:
    rel = w.release(n)
    promo = w.ledger.create_promotion("shop", "prod", rel.id, "alice", "ship it", "promote", "run-1")
    w.ledger.transition(promo.id, S.EVALUATING, actor="alice")
    w.ledger.set_decision(promo.id, {"verdict": "pass", "approvals_required": 1})
    w.ledger.transition(promo.id, S.AWAITING_APPROVAL, actor="stella")
    return promo.id


def approve(w: World, pid: str, user: str, plan_hash: str | None, decision: str = "approve"):
    return submit_approval(w.estate, w.ledger, w.key, pid, Approver(user), decision, "", targets=w.targets,
                           plan_hash=plan_hash)


def test_an_approval_binds_to_the_plan_shown_and_its_evidence_holds_that_plan(world):
    pid = waiting(world)
    shown = live_plan(world.estate, world.ledger, world.ledger.get_promotion(pid), world.targets)
    result = approve(world, pid, "bob", shown.hash)
    assert (result.counted, result.status) == (True, S.APPROVED)
    [row] = world.ledger.approvals_for(pid)
    assert row.plan_hash == shown.hash
    record = world.ledger.get_evidence(row.evidence_id)
    assert verify_evidence(record, world.ledger.registered_keys()).ok
    plan = record.content["plan"]
    assert plan["hash"] == shown.hash
    assert [(t["target"], t["changes"][0]["current"], t["changes"][0]["new"], t["changes"][0]["action"])
            for t in plan["targets"]] == [("a", digest(1), digest(2), "replace"), ("b", None, digest(2), "start")]
    assert [(who, p.hash) for who, p in approved_plans(world.ledger, pid)] == [("bob", shown.hash)]


def test_an_approval_of_a_plan_that_changed_is_refused_and_changes_nothing(world):
    pid = waiting(world)
    shown = live_plan(world.estate, world.ledger, world.ledger.get_promotion(pid), world.targets)
    world.hosts["b"].workloads.append(Workload("shop", "web", digest(9), "by-hand", True))  # changed by hand
    result = approve(world, pid, "bob", shown.hash)
    assert (result.counted, result.refusal, result.status) == (False, PLAN_CHANGED, S.AWAITING_APPROVAL)
    assert result.plan is not None and result.plan.hash != shown.hash
    assert result.plan.row("b").diff.changes[0].current == digest(9)  # the new plan, for the approver to review
    [row] = world.ledger.approvals_for(pid)
    assert (row.counted, row.refusal, row.evidence_id, row.plan_hash) == (False, PLAN_CHANGED, None, shown.hash)
    assert [e for e in world.ledger.evidence_for(promotion_id=pid) if e.type == "approval"] == []
    # Reviewing the new plan and approving it counts.
    again = approve(world, pid, "bob", result.plan.hash)
    assert (again.counted, again.status) == (True, S.APPROVED)


def test_a_rejection_stands_whatever_plan_it_saw(world):
    pid = waiting(world)
    result = approve(world, pid, "bob", "sha256:" + "0" * 64, decision="reject")
    assert (result.counted, result.status) == (True, S.REJECTED)


def test_no_plan_hash_sent_binds_to_the_live_plan(world):
    pid = waiting(world)
    result = approve(world, pid, "bob", None)
    assert result.counted
    assert world.ledger.approvals_for(pid)[0].plan_hash == result.plan.hash


def test_a_host_that_cannot_be_read_may_be_approved_as_unknown(world):
    pid = waiting(world)

    def down(app):
        raise ConnectionError("Connection refused")

    world.hosts["b"].facts = down
    shown = live_plan(world.estate, world.ledger, world.ledger.get_promotion(pid), world.targets)
    assert shown.unknown == ["b"]
    result = approve(world, pid, "bob", shown.hash)
    assert result.counted
    plan = world.ledger.get_evidence(result.evidence_id).content["plan"]
    assert plan["unknown"] == ["b"]
    assert plan["targets"][1]["sentences"] == [
        "could not read host b: Connection refused; what would change there is unknown"]


def test_the_plan_shown_when_the_wait_began_is_recorded_once(world):
    pid = waiting(world)
    first = record_plan_shown(world.estate, world.ledger, pid, world.targets)
    world.hosts["b"].workloads.append(Workload("shop", "web", digest(9), "by-hand", True))
    again = record_plan_shown(world.estate, world.ledger, pid, world.targets)  # a retried or resumed wait
    assert again is not None and first is not None and again.hash == first.hash
    assert plan_shown(world.ledger, pid).hash == first.hash
    assert [e.action for e in world.ledger.audit_events(f"promotion:{pid}")].count("promotion.plan_shown") == 1


def test_no_plan_is_recorded_for_a_promotion_that_does_not_wait(world):
    pid = waiting(world)
    world.ledger.transition(pid, S.CANCELLED, actor="alice")
    assert record_plan_shown(world.estate, world.ledger, pid, world.targets) is None
    assert plan_shown(world.ledger, pid) is None
