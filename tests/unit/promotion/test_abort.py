"""Aborting a waiting or stuck promotion: who may, what it ends as, and what it leaves behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stella_operators.approvals.policy import Approver
from stella_operators.promotion.abort import (
    AbortConflict,
    AbortRefused,
    abort_promotion,
)
from stella_operators.promotion.service import deploy_promotion
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import Workload, digest


def abort(world, promo, user: str, *roles: str, reason: str = "wrong release picked"):
    return abort_promotion(world.estate, world.ledger, world.key, promo.id, Approver(user, frozenset(roles)), reason,
                           world.targets)


def test_the_requester_cancels_a_waiting_promotion_with_evidence_and_audit(world):
    promo = world.approved(1, by="alice")
    result = abort(world, promo, "alice")
    assert (result.from_status, result.status) == ("approved", "cancelled")
    assert world.ledger.get_promotion(promo.id).status == S.CANCELLED
    [ev] = world.ledger.evidence_for(promotion_id=promo.id)
    assert str(ev.type) == "promotion" and ev.id == result.evidence_id
    assert ev.content["action"] == "abort" and ev.content["by"] == "alice"
    assert ev.content["reason"] == "wrong release picked"
    actions = [e.action for e in world.ledger.audit_events(f"promotion:{promo.id}")]
    assert "promotion.abort" in actions


def test_an_approver_of_the_environment_or_an_admin_may_abort_others_may_not(world):
    assert abort(world, world.approved(1), "bob").status == "cancelled"          # release-managers member
    assert abort(world, world.approved(1), "root", "admin").status == "cancelled"  # Airflow admin
    promo = world.approved(1)
    with pytest.raises(AbortRefused, match="mallory may not abort .* only its requester \\(alice\\), an approver "
                                           "of environment prod \\(release-managers\\) or an admin may"):
        abort(world, promo, "mallory", "op")
    assert world.ledger.get_promotion(promo.id).status == S.APPROVED
    assert "promotion.abort_refused" in [e.action for e in world.ledger.audit_events(f"promotion:{promo.id}")]


def test_a_blank_reason_or_a_finished_promotion_is_refused(world):
    promo = world.approved(1)
    with pytest.raises(ValueError, match="needs a reason"):
        abort(world, promo, "alice", reason="  ")
    abort(world, promo, "alice")
    with pytest.raises(AbortConflict, match="already ended as cancelled"):
        abort(world, promo, "alice")


def test_a_stuck_deployment_is_rolled_back_but_a_live_one_is_left_to_its_task(world, clock):
    deploy_promotion(world.estate, world.ledger, world.key, world.approved(1).id, world.targets)
    from stella_operators.promotion.service import verify_promotion

    verify_promotion(world.estate, world.ledger, world.key, world.ledger.recent_promotions(1)[0].id, world.targets)
    promo = world.approved(2)
    led = world.ledger
    assert led.acquire_deploy_lock("shop", "prod", promo.id, "run-2", lease_s=60).acquired
    led.transition(promo.id, S.DEPLOYING, actor="stella")
    dep = led.start_deployment(promo.id, "all_at_once", previous={"a": {"web": digest(1)}, "b": {"web": digest(1)}})
    world.hosts["a"].workloads.append(Workload("shop", "web", digest(2), dep, True))
    with pytest.raises(AbortConflict, match="is deploying now"):
        abort(world, promo, "alice")
    clock.now += timedelta(seconds=61)  # the task died: no heartbeat for longer than the lease
    result = abort(world, promo, "alice")
    assert (result.from_status, result.status) == ("deploying", "rolled_back")
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    assert led.deploy_lock("shop", "prod") is None
    assert [str(e.type) for e in led.evidence_for(promotion_id=promo.id)] == ["rollback", "promotion"]
