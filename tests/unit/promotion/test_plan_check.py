"""The deployment re-reads the hosts and compares what it would change with the plan every
counted approval approved: a container changed by hand in between stops it before anything
changes (promotion `failed`, reason `plan.changed`, both plans in the evidence, the lock released)
and a re-run of the deploy task stays safe; an unchanged plan deploys; a host approved while
unreadable is read again and deployed."""

from __future__ import annotations

import pytest

from stella_operators.api.views import why_sentences
from stella_operators.approvals.plans import live_plan
from stella_operators.approvals.policy import Approver
from stella_operators.approvals.service import submit_approval
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.promotion.why import last_transition
from tests.unit.promotion.fakes import Workload, World, digest


def approved_against_the_plan(world: World, n: int = 2) -> str:
    rel = world.release(n)
    promo = world.ledger.create_promotion("shop", "prod", rel.id, "alice", "ship it", "promote", "run-1")
    world.ledger.transition(promo.id, S.EVALUATING, actor="alice")
    world.ledger.set_decision(promo.id, {"verdict": "pass", "approvals_required": 1})
    world.ledger.transition(promo.id, S.AWAITING_APPROVAL, actor="stella")
    shown = live_plan(world.estate, world.ledger, world.ledger.get_promotion(promo.id), world.targets)
    result = submit_approval(world.estate, world.ledger, world.key, promo.id, Approver("bob"), "approve", "ok",
                             targets=world.targets, plan_hash=shown.hash)
    assert result.status == S.APPROVED
    return promo.id


def deploy(world: World, pid: str):
    return deploy_promotion(world.estate, world.ledger, world.key, pid, world.targets)


def test_a_container_changed_by_hand_after_approval_stops_the_deployment(world):
    for host in world.hosts.values():
        host.workloads.append(Workload("shop", "web", digest(1), "dep-1", True))
    pid = approved_against_the_plan(world)
    world.hosts["b"].workloads[0].digest = digest(7)   # someone ran another image on b by hand
    with pytest.raises(DeploymentFailed, match=rf"no longer what was approved: b: web ran {digest(1)} when approved, "
                                               rf"runs {digest(7)} now \(approved by bob\)\. Nothing was changed\. "
                                               r"Request the promotion again"):
        deploy(world, pid)
    assert all(h.calls == [] for h in world.hosts.values())                # nothing touched
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(7)}}
    assert world.ledger.get_promotion(pid).status == S.FAILED
    assert world.ledger.deploy_lock("shop", "prod") is None
    assert world.ledger.deployments_for(pid) == []
    last = last_transition(world.ledger, pid)
    assert last is not None and last["detail"]["reason"] == "plan.changed"
    [ev] = [e for e in world.ledger.evidence_for(promotion_id=pid) if e.content.get("status") == "not_started"]
    assert ev.content["reason"] == "plan.changed"
    [approved] = ev.content["approved_plans"]
    assert approved["approver"] == "bob"
    assert approved["plan"]["targets"][1]["changes"][0]["current"] == digest(1)
    assert ev.content["live_plan"]["targets"][1]["changes"][0]["current"] == digest(7)
    assert [e.action for e in world.ledger.audit_events(f"promotion:{pid}")].count("deployment.plan_changed") == 1
    # "Why?" (page, REST, `stella why`) says what changed and what to do.
    assert why_sentences(world.estate, world.ledger, world.ledger.get_promotion(pid))[-1] == (
        f"It was not deployed: what it would change in prod is no longer what was approved (b: web ran {digest(1)} "
        f"when approved, runs {digest(7)} now (approved by bob)). Nothing was changed; request it again and the "
        "approvers will see the new plan.")
    # A cleared or retried deploy task finds the promotion ended: still nothing deployed.
    with pytest.raises(DeploymentFailed, match="is failed; nothing to deploy"):
        deploy(world, pid)
    assert all(h.calls == [] for h in world.hosts.values())


def test_an_unchanged_plan_deploys(world):
    world.hosts["a"].workloads.append(Workload("shop", "web", digest(1), "dep-1", True))
    pid = approved_against_the_plan(world)
    outcome = deploy(world, pid)
    assert outcome.status == "deployed"
    verify_promotion(world.estate, world.ledger, world.key, pid, world.targets)
    assert world.running() == {"a": {"web": digest(2)}, "b": {"web": digest(2)}}


def test_a_host_approved_while_unreadable_is_read_again_and_deployed(world):
    down = world.hosts["b"]

    def refuse(app):
        raise ConnectionError("Connection refused")

    down.facts = refuse
    pid = approved_against_the_plan(world)
    plan = [e for e in world.ledger.evidence_for(promotion_id=pid) if e.type == "approval"][0].content["plan"]
    assert plan["unknown"] == ["b"]
    del down.facts                                    # back up before the deployment
    assert deploy(world, pid).status == "deployed"


def test_no_approval_needed_means_no_plan_to_compare(world):
    pid = world.approved(2).id                         # approved by the gates alone
    world.hosts["a"].workloads.append(Workload("shop", "web", digest(9), "by-hand", True))
    assert deploy(world, pid).status == "deployed"
