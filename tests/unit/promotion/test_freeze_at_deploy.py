"""Freeze re-checked at deploy time: a promotion that passed its gates before a window began and
then waited for approvals does not deploy inside the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stella_operators.approvals.policy import Approver
from stella_operators.approvals.service import settle_approval, submit_approval
from stella_operators.promotion.gating import evaluate_promotion
from stella_operators.promotion.service import (
    DeploymentFailed,
    FrozenAtDeploy,
    deploy_promotion,
)
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import World, digest


def freeze_gate(**extra):
    now = datetime.now(UTC).replace(microsecond=0)
    window = {"name": "year-end", "timezone": "UTC", "start": (now - timedelta(hours=1)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "description": "sale"}
    return {"type": "freeze", "windows": [window], **extra}, now


def waited_into_the_window(world, now):
    """Gates evaluated 2 h ago (before the window began), then approved by bob just now."""
    rel = world.release(2)
    promo = world.ledger.create_promotion("shop", "prod", rel.id, "alice", "ship it", "promote", "run-frozen")
    world.ledger.transition(promo.id, S.EVALUATING, actor="stella")
    outcome = evaluate_promotion(world.estate, world.ledger, world.key, promo.id, now=now - timedelta(hours=2))
    assert outcome.verdict == "pass" and outcome.approvals_required == 1
    submit_approval(world.estate, world.ledger, world.key, promo.id, Approver("bob"), "approve", "ok")
    settle_approval(world.estate, world.ledger, world.key, promo.id, {"status": "approved"})
    assert world.ledger.get_promotion(promo.id).status == S.APPROVED
    return promo


@pytest.mark.parametrize("at_deploy", [None, "fail"])
def test_deploy_inside_the_window_fails_and_records_its_own_verdict(tmp_path, at_deploy):
    gate, now = freeze_gate(**({"at_deploy": at_deploy} if at_deploy else {}))
    world = World(tmp_path, gates=[gate])
    promo = waited_into_the_window(world, now)
    with pytest.raises(DeploymentFailed, match="freeze window is active at deploy time.*year-end"):
        deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert world.ledger.get_promotion(promo.id).status == S.FAILED
    assert all(h.calls == [] for h in world.hosts.values())       # nothing touched
    verdicts = [v for v, _ in world.ledger.gate_verdicts_for(promo.id) if v.gate_type == "freeze"]
    assert [(str(v.verdict), v.details.get("checked_at")) for v in verdicts] == [("pass", None), ("fail", "deploy")]
    assert verdicts[1].reasons == ("freeze.window_active",)
    [ev] = [e for e in world.ledger.evidence_for(promotion_id=promo.id) if e.content.get("status") == "not_started"]
    assert ev.content["reason"] == "freeze.at_deploy"
    assert world.ledger.deploy_lock("shop", "prod") is None
    world.ledger.close()


def test_at_deploy_wait_defers_until_the_window_ends(tmp_path):
    gate, now = freeze_gate(at_deploy="wait")
    world = World(tmp_path, gates=[gate])
    promo = waited_into_the_window(world, now)
    with pytest.raises(FrozenAtDeploy) as caught:
        deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert caught.value.opens_at == now + timedelta(hours=1)
    assert world.ledger.get_promotion(promo.id).status == S.APPROVED   # still waiting, nothing changed
    assert all(h.calls == [] for h in world.hosts.values())
    assert world.ledger.deploy_lock("shop", "prod") is None
    world.ledger.close()


def test_no_window_deploys(tmp_path):
    gate, now = freeze_gate()
    gate["windows"][0]["start"] = (now + timedelta(hours=5)).isoformat()
    gate["windows"][0]["end"] = (now + timedelta(hours=6)).isoformat()
    world = World(tmp_path, gates=[gate])
    promo = waited_into_the_window(world, now)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert world.ledger.get_promotion(promo.id).status == S.VERIFYING
    assert world.running() == {"a": {"web": digest(2)}, "b": {"web": digest(2)}}
    world.ledger.close()


def test_at_deploy_must_be_wait_or_fail():
    from stella_operators.gates.contract import GateConfigError
    from stella_operators.gates.registry import build_gate

    with pytest.raises(GateConfigError, match="at_deploy"):
        build_gate({"type": "freeze", "windows": [], "at_deploy": "later"})
