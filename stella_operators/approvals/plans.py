"""The deployment plan around an approval: the one shown when the wait began, the live one an
approver is shown (and bound to), and the ones the counted approvals approved.

Where each lives in the ledger:
- shown when the wait began: an audit event `promotion.plan_shown` (hash-chained, append-only),
  written once by the approval wait (sensors/approval.py);
- approved: the approval attempt's `plan_hash` column, and the whole plan in the approval's
  signed evidence (`content.plan`);
- found at deploy time: the `deployment` evidence of a deployment that stopped because it differed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from stella_operators.deploy.preview import PREVIEW_TIMEOUT_S, DeploymentPlan, preview_plan
from stella_operators.ledger.protocols import ApprovalBook, AuditLog, EvidenceBook, PromotionBook, ReleaseBook
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate, TargetConfig
    from stella_operators.promotion.model import Promotion
    from stella_operators.targets.contract import Target

PLAN_SHOWN = "promotion.plan_shown"
TargetFactory = Callable[["TargetConfig"], "Target"]


class PlanLedger(ReleaseBook, PromotionBook, AuditLog, Protocol):
    """Reading a promotion's release and writing the plan shown."""


class ApprovedPlanBook(ApprovalBook, EvidenceBook, Protocol):
    """Approval attempts and the evidence that seals the counted ones."""


def live_plan(estate: Estate, ledger: ReleaseBook, promo: Promotion, targets: TargetFactory, *,
              timeout_s: float = PREVIEW_TIMEOUT_S) -> DeploymentPlan:
    """What deploying the promotion's release would change now, read from every target."""
    release = ledger.get_release(promo.release_id)
    return preview_plan(estate, release, promo.environment, targets, timeout_s=timeout_s)


def plan_shown(ledger: AuditLog, promotion_id: str) -> DeploymentPlan | None:
    """The plan recorded when the approval wait began (None: not recorded)."""
    for event in ledger.audit_events(f"promotion:{promotion_id}"):
        if event.action == PLAN_SHOWN:
            return DeploymentPlan.from_dict(event.detail["plan"])
    return None


def record_plan_shown(estate: Estate, ledger: PlanLedger, promotion_id: str, targets: TargetFactory, *,
                      timeout_s: float = PREVIEW_TIMEOUT_S) -> DeploymentPlan | None:
    """Read and record the plan once, when the approval wait begins; a retried or resumed wait
    finds it recorded and reads nothing. None when the promotion does not wait for approvals."""
    recorded = plan_shown(ledger, promotion_id)
    if recorded is not None:
        return recorded
    promo = ledger.get_promotion(promotion_id)
    if promo.status != S.AWAITING_APPROVAL:
        return None
    plan = live_plan(estate, ledger, promo, targets, timeout_s=timeout_s)
    ledger.audit("stella", PLAN_SHOWN, f"promotion:{promotion_id}", {"plan": plan.to_dict()})
    return plan


def approved_plans(ledger: ApprovedPlanBook, promotion_id: str) -> list[tuple[str, DeploymentPlan]]:
    """(approver, plan) for every counted approval given against a plan, in the order given.
    Approvals recorded without a plan (before ledger revision 0004) are not listed."""
    out = []
    for a in ledger.approvals_for(promotion_id):
        if not (a.counted and a.decision == "approve" and a.plan_hash and a.evidence_id):
            continue
        content: dict[str, Any] = ledger.get_evidence(a.evidence_id).content
        plan = DeploymentPlan.from_dict(content["plan"])
        if plan.hash != a.plan_hash:  # the evidence is signed; a mismatch means a tampered row
            raise ValueError(f"approval {a.seq} by {a.approver}: its plan hash {a.plan_hash} does not match the "
                             f"plan in its evidence {a.evidence_id} ({plan.hash})")
        out.append((a.approver, plan))
    return out
