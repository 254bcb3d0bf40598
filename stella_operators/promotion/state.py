"""The promotion state machine: the one place that says which status may follow which.

requested -> evaluating -> awaiting_approval -> approved -> deploying -> verifying -> deployed
exits: rejected, cancelled, failed, rolled_back.
"""

from __future__ import annotations

from enum import StrEnum


class PromotionStatus(StrEnum):
    REQUESTED = "requested"
    EVALUATING = "evaluating"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    DEPLOYING = "deploying"
    VERIFYING = "verifying"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


S = PromotionStatus
TERMINAL_STATUSES = frozenset({S.DEPLOYED, S.REJECTED, S.CANCELLED, S.FAILED, S.ROLLED_BACK})

# Every status not terminal may be cancelled; failures may happen wherever work is done.
TRANSITIONS: dict[PromotionStatus, frozenset[PromotionStatus]] = {
    S.REQUESTED: frozenset({S.EVALUATING, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.EVALUATING: frozenset({S.AWAITING_APPROVAL, S.APPROVED, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.APPROVED: frozenset({S.DEPLOYING, S.CANCELLED, S.FAILED}),
    S.DEPLOYING: frozenset({S.VERIFYING, S.FAILED, S.ROLLED_BACK}),
    S.VERIFYING: frozenset({S.DEPLOYED, S.FAILED, S.ROLLED_BACK}),
    S.DEPLOYED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}


class IllegalTransition(ValueError):
    """A status change the state machine does not allow."""


def check_transition(current: PromotionStatus | str, new: PromotionStatus | str) -> PromotionStatus:
    cur, nxt = PromotionStatus(current), PromotionStatus(new)
    if nxt not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(TRANSITIONS[cur])) or "nothing (terminal)"
        raise IllegalTransition(f"promotion cannot go from {cur} to {nxt}; from {cur} it may go to {allowed}")
    return nxt
