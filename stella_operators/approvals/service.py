"""Approval use cases: submit an approval or rejection (REST, UI, CLI), settle the wait, read the state.

Every decision about a promotion's approvals is taken in ONE ledger transaction that first locks
the promotion (`Ledger.write_approval_decision`): the attempt is decided against the attempts
already stored, stored, sealed as evidence only if it counted, and -- when it completes the quorum
or is a counted rejection -- the promotion is settled (approved / rejected) right there. The
approval sensor and its trigger only observe that status; `settle_approval` re-counts from the
ledger and never takes an event's word for an outcome. So the status always equals the tally, a
counted rejection always wins, attempts after the promotion settled are refused (`approval.closed`)
and what an approver is told is what was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stella_operators.approvals.plans import TargetFactory, live_plan
from stella_operators.approvals.policy import (
    CLOSED,
    DECISIONS,
    TIMEOUT,
    ApprovalState,
    Approver,
    decide_approval_attempt,
    tally,
)
from stella_operators.estate.models import ApprovalRequirement, ApproverGroup, Estate
from stella_operators.evidence.recorder import seal_release_evidence
from stella_operators.ledger.decisions import ApprovalAttempt, ApprovalWrite, Settlement
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from stella_operators.deploy.preview import DeploymentPlan
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import ApprovalLedger
    from stella_operators.ledger.records import Approval
    from stella_operators.promotion.model import Promotion

# Approvals that a freeze override or a pending policy adds, in an environment without approver
# groups, go to Airflow admins.
FALLBACK_GROUP = ApproverGroup(name="airflow-admins", roles=["admin"])
ERROR = "approval.error"


@dataclass(frozen=True)
class AttemptResult:
    """What an approver is told: whether their attempt counted (else why not), the tally and the
    promotion's status after it -- all as the one transaction that stored the attempt left them."""

    counted: bool
    refusal: str | None
    duplicate: bool
    state: ApprovalState
    evidence_id: str | None
    status: str = ""
    plan: DeploymentPlan | None = None  # the live plan the attempt was decided against (None: not read)

    @property
    def settled(self) -> bool:
        """This attempt settled the promotion (completed the quorum, or a counted rejection)."""
        return self.counted and self.status in (S.APPROVED, S.REJECTED)


def effective_requirement(estate: Estate, promo: Promotion) -> tuple[ApprovalRequirement, list[ApproverGroup]]:
    """The environment's requirement with the count the gate decision settled on, and its groups."""
    env = estate.environment(promo.environment)
    base = env.approvals or ApprovalRequirement(required=0, groups=[])
    required = int((promo.decision or {}).get("approvals_required", base.required))
    requirement = base.model_copy(update={"required": required})
    if not requirement.groups:
        return requirement.model_copy(update={"groups": [FALLBACK_GROUP.name]}), [FALLBACK_GROUP]
    return requirement, [g for g in estate.approver_groups if g.name in requirement.groups]


def approval_state(estate: Estate, ledger: ApprovalLedger, promotion_id: str) -> ApprovalState:
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    requirement, _ = effective_requirement(estate, promo)
    return tally(requirement, ledger.approvals_for(promotion_id), release.content_hash)


def _settlement(state: ApprovalState, actor: str) -> Settlement | None:
    """The status change a tally calls for (None while it is pending)."""
    if state.status == "approved":
        return Settlement(S.APPROVED, actor, {"approvers": list(state.approvers)})
    if state.status == "rejected":
        return Settlement(S.REJECTED, state.rejected_by or actor, {"rejected_by": state.rejected_by})
    return None


def submit_approval(estate: Estate, ledger: ApprovalLedger, key: SigningKey, promotion_id: str, approver: Approver,
                    decision: str, comment: str, content_hash: str | None = None, *,
                    targets: TargetFactory | None = None, plan_hash: str | None = None) -> AttemptResult:
    """Record one approval attempt. Identity (`approver`) comes from Airflow's auth, never the body.

    Every attempt is stored, counted or refused; one arriving when the promotion no longer waits for
    approvals is refused with `approval.closed`. The attempt that completes the quorum, or a counted
    rejection, settles the promotion in the same transaction.

    With `targets`, the live deployment plan is read first (deploy/preview.py): an approval whose
    `plan_hash` (the plan the approver was shown) is not the live plan's is refused with
    `approval.plan_changed`; a counted attempt binds to the live plan (its hash on the attempt, the
    plan itself in its evidence). A plan with unknown targets (hosts that could not be read) may be
    approved: the evidence says which were unknown, and the deployment re-reads them.
    """
    if decision not in DECISIONS:
        raise ValueError("decision must be 'approve' or 'reject'")
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    ledger.register_key(key.key_id, key.public_pem())
    shown = content_hash or release.content_hash
    verdict: dict[str, Any] = {"duplicate": False}
    # Read outside the transaction (network I/O); a change between this read and the deployment
    # is what the deploy-time check (promotion/service.py) is for.
    live = live_plan(estate, ledger, promo, targets) if targets is not None and promo.status == S.AWAITING_APPROVAL \
        else None
    live_hash = live.hash if live is not None else None

    def plan(current: Promotion, attempts: list[Approval]) -> ApprovalWrite:
        if current.status != S.AWAITING_APPROVAL:
            return ApprovalWrite(attempt=ApprovalAttempt(approver.user, decision, comment, shown, False, CLOSED,
                                                         plan_hash or live_hash))
        requirement, groups = effective_requirement(estate, current)
        counted, refusal, verdict["duplicate"] = decide_approval_attempt(
            requirement, groups, approver, decision, requester=current.requested_by,
            release_creator=release.created_by, approvals=attempts, content_hash=release.content_hash,
            sent_hash=content_hash, plan_hash=live_hash, sent_plan_hash=plan_hash)
        # A refused attempt keeps the hash the approver sent (what they saw); a counted one the live plan's.
        attempt = ApprovalAttempt(approver.user, decision, comment, shown, counted, refusal,
                                  live_hash if counted else (plan_hash or live_hash))
        if not counted:
            return ApprovalWrite(attempt=attempt)
        evidence = seal_release_evidence(key, "approval", release, {
            "environment": current.environment, "promotion_id": promotion_id, "approver": approver.user,
            "decision": decision, "comment": comment, "content_hash": release.content_hash,
            **({"plan": live.to_dict()} if live is not None else {})})
        after = tally(requirement, [*attempts, attempt], release.content_hash)
        return ApprovalWrite(attempt, evidence, _settlement(after, approver.user))

    written = ledger.write_approval_decision(promotion_id, plan)
    requirement, _ = effective_requirement(estate, written.promotion)
    state = tally(requirement, written.attempts, release.content_hash)
    row = written.attempt
    assert row is not None  # plan() above always writes an attempt
    return AttemptResult(row.counted, row.refusal, verdict["duplicate"], state, row.evidence_id,
                         str(written.promotion.status), live)


def settle_approval(estate: Estate, ledger: ApprovalLedger, key: SigningKey, promotion_id: str,
                    event: dict[str, Any]) -> S:
    """Settle the approval wait from the ledger's own tally; returns the promotion's status.

    The event (from the trigger) is only a hint: an `approved` or `rejected` claim changes nothing
    the ledger does not show. If the promotion still awaits approval and its tally is settled (an
    approval given before this code settled in the same call), it settles now. A `timeout` or
    `error` event fails the still-pending promotion closed, with a signed `approval` evidence
    record whose decision is `timeout` (or `error`). A promotion no longer awaiting approval is
    left as it is (the approval call that settled it already did the work).
    """
    release = ledger.get_release(ledger.get_promotion(promotion_id).release_id)  # sealed: never changes
    ledger.register_key(key.key_id, key.public_pem())

    def plan(current: Promotion, attempts: list[Approval]) -> ApprovalWrite:
        if current.status != S.AWAITING_APPROVAL:
            return ApprovalWrite()
        requirement, _ = effective_requirement(estate, current)
        state = tally(requirement, attempts, release.content_hash)
        settled = _settlement(state, "stella")
        if settled is not None:
            return ApprovalWrite(settle=settled)
        if event.get("status") not in ("timeout", "error"):
            return ApprovalWrite()
        reason = TIMEOUT if event.get("status") == "timeout" else ERROR
        outcome = {"approvers": list(state.approvers), "needed": state.needed, "reason": reason}
        if event.get("error"):
            outcome["error"] = str(event["error"])[:500]
        evidence = seal_release_evidence(key, "approval", release, {
            "environment": current.environment, "promotion_id": promotion_id, "approver": "stella",
            "decision": "timeout" if reason == TIMEOUT else "error", "content_hash": release.content_hash,
            **({"deadline": event["deadline"]} if event.get("deadline") else {}), **outcome})
        return ApprovalWrite(evidence=evidence, settle=Settlement(S.FAILED, "stella", outcome))

    return S(ledger.write_approval_decision(promotion_id, plan).promotion.status)
