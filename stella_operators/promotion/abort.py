"""Abort a promotion that waits or is stuck: `stella promotion abort`, REST, the page's button.

Who may: the requester, an approver of that environment (a member of its approver groups,
separation of duties aside: stopping is not approving), or an Airflow admin. A waiting promotion
(requested ... approved) ends `cancelled`; one that is deploying or verifying is rolled back
(`rolled_back`, or `failed` naming the hosts that could not be restored) -- unless its deploy
task is alive (its lock lease is fresh): stopping that task is what rolls it back, so the abort
is refused rather than racing it. Each abort leaves an audit event and a `promotion` evidence record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stella_operators.approvals.policy import Approver, eligibility
from stella_operators.approvals.service import effective_requirement
from stella_operators.estate.models import Estate
from stella_operators.evidence.recorder import record_evidence
from stella_operators.promotion.recovery import ROLLBACK_STATUSES, roll_back_promotion
from stella_operators.promotion.state import TERMINAL_STATUSES
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger
    from stella_operators.promotion.model import Promotion
    from stella_operators.promotion.service import TargetFactory

ADMIN_ROLES = frozenset({"admin", "Admin"})
MIN_REASON = 3


class AbortRefused(RuntimeError):
    """The user may not abort this promotion (HTTP 403)."""


class AbortConflict(RuntimeError):
    """The promotion already finished, or is being deployed by a live task (HTTP 409)."""


@dataclass(frozen=True)
class AbortResult:
    promotion_id: str
    from_status: str
    status: str
    evidence_id: str
    not_restored: tuple[str, ...] = ()


def may_abort(estate: Estate, promo: Promotion, user: Approver) -> str | None:
    """None if `user` may abort `promo`, else a sentence saying who may."""
    if user.user == promo.requested_by or user.roles & ADMIN_ROLES:
        return None
    requirement, groups = effective_requirement(estate, promo)
    no_sod = requirement.model_copy(update={"separation_of_duties": False})
    if eligibility(no_sod, groups, user, requester=promo.requested_by, release_creator="") is None:
        return None
    return (f"{user.user} may not abort promotion {promo.id}: only its requester ({promo.requested_by}), "
            f"an approver of environment {promo.environment} ({', '.join(requirement.groups)}) or an admin may")


def abort_promotion(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, user: Approver,
                    reason: str, targets: TargetFactory) -> AbortResult:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise ValueError(f"an abort needs a reason (at least {MIN_REASON} characters): say why, it goes into "
                         "the evidence")
    promo = ledger.get_promotion(promotion_id)  # NotFound -> 404
    refusal = may_abort(estate, promo, user)
    if refusal is not None:
        ledger.audit(user.user, "promotion.abort_refused", f"promotion:{promotion_id}",
                     {"reason": reason, "status": str(promo.status)})
        raise AbortRefused(refusal)
    if promo.status in TERMINAL_STATUSES:
        raise AbortConflict(f"promotion {promotion_id} already ended as {promo.status}; nothing to abort")
    release = ledger.get_release(promo.release_id)
    not_restored: tuple[str, ...] = ()
    if promo.status in ROLLBACK_STATUSES:
        live = [lock for lock in ledger.locks_held_by(promotion_id) if not ledger.deploy_lock_is_stale(lock)]
        if live and promo.status == S.DEPLOYING:
            raise AbortConflict(
                f"promotion {promotion_id} is deploying now (its deploy task renewed the lock; the lease runs "
                f"until {live[0].expires_at.isoformat()}): stop the task in Airflow (mark it failed), which rolls "
                "it back, or abort again once the lease has run out")
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                     reason=f"aborted by {user.user}: {reason}", actor=user.user)
        status, not_restored = report.status, tuple(report.not_restored)
    else:
        ledger.transition(promotion_id, S.CANCELLED, actor=user.user, detail={"reason": "aborted", "by": user.user,
                                                                              "comment": reason})
        status = str(S.CANCELLED)
        for lock in ledger.locks_held_by(promotion_id):
            ledger.release_deploy_lock(promo.app, lock.environment, promotion_id,
                                       scope="environment" if lock.app == "*" else "app", actor=user.user)
    record = record_evidence(ledger, key, "promotion", release, {
        "environment": promo.environment, "promotion_id": promotion_id, "action": "abort", "by": user.user,
        "reason": reason, "from_status": str(promo.status), "status": status,
        "not_restored": list(not_restored)}, promotion_id=promotion_id)
    ledger.audit(user.user, "promotion.abort", f"promotion:{promotion_id}",
                 {"reason": reason, "from_status": str(promo.status), "status": status, "evidence_id": record.id})
    return AbortResult(promotion_id, str(promo.status), status, record.id, not_restored)
