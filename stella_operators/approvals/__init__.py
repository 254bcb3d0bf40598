"""The approval domain: who may approve a promotion and where its approvals stand (pure rules)."""

from stella_operators.approvals.policy import (
    BOUND_TO_OTHER_RELEASE,
    CLOSED,
    CREATOR_CANNOT_APPROVE,
    DUPLICATE,
    INSUFFICIENT,
    NOT_IN_GROUPS,
    REJECTED,
    REQUESTER_CANNOT_APPROVE,
    TIMEOUT,
    ApprovalState,
    Approver,
    AttemptDecision,
    decide_approval_attempt,
    eligibility,
    tally,
)

__all__ = [
    "BOUND_TO_OTHER_RELEASE",
    "CLOSED",
    "CREATOR_CANNOT_APPROVE",
    "DUPLICATE",
    "INSUFFICIENT",
    "NOT_IN_GROUPS",
    "REJECTED",
    "REQUESTER_CANNOT_APPROVE",
    "TIMEOUT",
    "ApprovalState",
    "Approver",
    "AttemptDecision",
    "decide_approval_attempt",
    "eligibility",
    "tally",
]
