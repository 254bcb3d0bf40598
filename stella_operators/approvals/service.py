"""Approval use cases: submit an approval or rejection (REST, UI, CLI), read the current state."""

from __future__ import annotations

from dataclasses import dataclass

from stella_operators.estate.models import ApprovalRequirement, ApproverGroup, Estate
from stella_operators.evidence.recorder import record_evidence
from stella_operators.promotion.state import PromotionStatus as S

# Approvals that a freeze override or a pending policy adds, in an environment without approver
# groups, go to Airflow admins.
FALLBACK_GROUP = ApproverGroup(name="airflow-admins", roles=["admin"])


class ApprovalClosed(RuntimeError):
    """The promotion is not waiting for approvals (already decided, or never needed them)."""


@dataclass(frozen=True)
class AttemptResult:
    counted: bool
    refusal: str | None
    duplicate: bool
    state: object          # approvals.policy.ApprovalState
    evidence_id: str | None


def effective_requirement(estate: Estate, promo) -> tuple[ApprovalRequirement, list[ApproverGroup]]:
    """The environment's requirement with the count the gate decision settled on, and its groups."""
    env = estate.environment(promo.environment)
    base = env.approvals or ApprovalRequirement(required=0, groups=[])
    required = int((promo.decision or {}).get("approvals_required", base.required))
    requirement = base.model_copy(update={"required": required})
    if not requirement.groups:
        return requirement.model_copy(update={"groups": [FALLBACK_GROUP.name]}), [FALLBACK_GROUP]
    return requirement, [g for g in estate.approver_groups if g.name in requirement.groups]


def approval_state(estate: Estate, ledger, promotion_id: str):
    from stella_operators.approvals.policy import tally

    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    requirement, _ = effective_requirement(estate, promo)
    return tally(requirement, ledger.approvals_for(promotion_id), release.content_hash)


def submit_approval(estate: Estate, ledger, key, promotion_id: str, approver, decision: str, comment: str,
                    content_hash: str | None = None) -> AttemptResult:
    """Record one approval attempt. Identity (`approver`) comes from Airflow's auth, never the body."""
    from stella_operators.approvals.policy import decide_approval_attempt, tally

    if decision not in ("approve", "reject"):
        raise ValueError("decision must be 'approve' or 'reject'")
    promo = ledger.get_promotion(promotion_id)
    if promo.status != S.AWAITING_APPROVAL:
        raise ApprovalClosed(f"promotion {promotion_id} is {promo.status}, not awaiting approval")
    release = ledger.get_release(promo.release_id)
    requirement, groups = effective_requirement(estate, promo)
    counted, refusal, duplicate = decide_approval_attempt(
        requirement, groups, approver, decision, requester=promo.requested_by, release_creator=release.created_by,
        approvals=ledger.approvals_for(promotion_id), content_hash=release.content_hash, sent_hash=content_hash)
    evidence_id = None
    if counted:
        record = record_evidence(ledger, key, "approval", release, {
            "environment": promo.environment, "promotion_id": promotion_id, "approver": approver.user,
            "decision": decision, "comment": comment, "content_hash": release.content_hash},
            promotion_id=promotion_id)
        evidence_id = record.id
    row = ledger.record_approval(promotion_id, approver.user, decision, comment,
                                 content_hash or release.content_hash,
                                 counted=counted, refusal=refusal, evidence_id=evidence_id)
    # The ledger has the last word: a counted attempt that lost a race is stored as a duplicate.
    duplicate = duplicate or (counted and not row.counted)
    state = tally(requirement, ledger.approvals_for(promotion_id), release.content_hash)
    return AttemptResult(row.counted, row.refusal, duplicate, state, evidence_id)


def settle_approval(ledger, promotion_id: str, event: dict) -> str:
    """Apply the approval wait's outcome to the promotion; returns the new status.

    approved -> approved; rejected -> rejected; timeout or error -> failed (closed, never approved).
    """
    status = event.get("status")
    if status == "approved":
        ledger.transition(promotion_id, S.APPROVED, actor="stella", detail={"approvers": event.get("approvers", [])})
        return S.APPROVED
    if status == "rejected":
        ledger.transition(promotion_id, S.REJECTED, actor=event.get("rejected_by") or "stella",
                          detail={"rejected_by": event.get("rejected_by")})
        return S.REJECTED
    reason = "approval.timeout" if status == "timeout" else "approval.error"
    ledger.transition(promotion_id, S.FAILED, actor="stella", detail={"reason": reason, **event})
    return S.FAILED
