"""The approval rules, as pure functions: who may approve, what an attempt counts for, where a promotion stands.

Nothing here does I/O. The REST layer (or CLI) calls `decide_approval_attempt` before it records an
attempt in the ledger (`Ledger.record_approval`), and the approval gate calls `tally` over
`Ledger.approvals_for(promotion_id)`.

Identities are compared exactly (case-sensitive, no trimming): an Airflow user name *is* the identity
the auth manager vouched for, and folding case would let `Alice` and `alice` -- which the auth
backend may treat as two different accounts -- stand in for each other (e.g. a requester approving
their own promotion under a differently cased second account). Roles are compared exactly for the
same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from stella_operators.estate.models import ApprovalRequirement, ApproverGroup

# Stable reason codes (they end up in the ledger, in evidence and in "why blocked?").
NOT_IN_GROUPS = "approval.not_in_groups"
REQUESTER_CANNOT_APPROVE = "approval.requester_cannot_approve"
CREATOR_CANNOT_APPROVE = "approval.creator_cannot_approve"
BOUND_TO_OTHER_RELEASE = "approval.bound_to_other_release"
DUPLICATE = "approval.duplicate"
REJECTED = "approval.rejected"
INSUFFICIENT = "approval.insufficient_approvals"
PLAN_CHANGED = "approval.plan_changed"  # the approver saw another plan than the live one: reload
CLOSED = "approval.closed"          # the promotion is not (or no longer) waiting for approvals
TIMEOUT = "approval.timeout"        # the wait ended without enough approvals: failed closed

APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)

Status = Literal["pending", "approved", "rejected"]


@dataclass(frozen=True)
class Approver:
    """Who is trying to approve, as Airflow's auth manager identifies them."""

    user: str
    roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not self.user:
            raise ValueError("an approver needs a user name")
        if isinstance(self.roles, str):
            raise TypeError("roles is a collection of role names, not one string")
        object.__setattr__(self, "roles", frozenset(self.roles))


class ApprovalLike(Protocol):
    """What `tally` and `decide_approval_attempt` read from a recorded attempt (ledger.records.Approval fits)."""

    # Read-only (properties): frozen dataclasses such as ledger.decisions.ApprovalAttempt fit too.
    @property
    def approver(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def counted(self) -> bool: ...
    @property
    def refusal(self) -> str | None: ...


@dataclass(frozen=True)
class ApprovalState:
    status: Status
    approvers: tuple[str, ...]      # distinct counted approvers, in the order they approved
    needed: int                     # approvals still needed (0 once enough have been given)
    rejected_by: str | None         # the first counted rejection's approver
    reasons: tuple[str, ...]        # stable codes: why pending/rejected, and any void approvals


class AttemptDecision(NamedTuple):
    """What to record for an attempt: counted or not, the refusal code, and whether it duplicates one counted."""

    counted: bool
    refusal: str | None
    duplicate: bool


def _members(requirement: ApprovalRequirement, groups: Iterable[ApproverGroup]) -> tuple[set[str], set[str]]:
    allowed = set(requirement.groups)
    users: set[str] = set()
    roles: set[str] = set()
    for group in groups:
        if group.name in allowed:
            users.update(group.users)
            roles.update(group.roles)
    return users, roles


def eligibility(requirement: ApprovalRequirement, groups: Sequence[ApproverGroup], approver: Approver, *,
                requester: str, release_creator: str) -> str | None:
    """None if `approver` may approve (or reject) under `requirement`, else the refusal code.

    Separation of duties is checked first (it holds whatever the group membership), then
    membership: a user listed in, or holding a role of, any of the requirement's groups. Groups
    not named by the requirement do not count; a requirement naming no group admits nobody.
    """
    if requirement.separation_of_duties:
        if approver.user == requester:
            return REQUESTER_CANNOT_APPROVE
        if approver.user == release_creator:
            return CREATOR_CANNOT_APPROVE
    users, roles = _members(requirement, groups)
    if approver.user in users or approver.roles & roles:
        return None
    return NOT_IN_GROUPS


def _counts(row: ApprovalLike, content_hash: str) -> bool:
    return bool(row.counted) and row.refusal is None and row.content_hash == content_hash


def tally(requirement: ApprovalRequirement, approvals: Iterable[ApprovalLike], content_hash: str) -> ApprovalState:
    """Where the approvals stand for a release whose content hash is `content_hash`.

    Only counted, unrefused attempts given for this exact content hash count; a counted attempt
    for another hash is void (and `approval.bound_to_other_release` is among the reasons). One
    person counts once. Any counted rejection rejects, however many approvals there are.
    `required == 0` approves (unless someone rejected). Pass the attempts in ledger (seq) order.
    """
    approvers: list[str] = []
    rejected_by: str | None = None
    void = False
    for row in approvals:
        if not row.counted or row.refusal is not None:
            continue
        if row.content_hash != content_hash:
            void = True
            continue
        if row.decision == REJECT:
            rejected_by = rejected_by or row.approver
        elif row.decision == APPROVE:
            if row.approver not in approvers:
                approvers.append(row.approver)
        else:  # an unknown decision never approves
            raise ValueError(f"unknown approval decision {row.decision!r}")
    needed = max(0, requirement.required - len(approvers))
    reasons: list[str] = []
    if rejected_by is not None:
        status: Status = "rejected"
        reasons.append(REJECTED)
    elif needed == 0:
        status = "approved"
    else:
        status = "pending"
        reasons.append(INSUFFICIENT)
    if void:
        reasons.append(BOUND_TO_OTHER_RELEASE)
    return ApprovalState(status, tuple(approvers), needed, rejected_by, tuple(reasons))


def decide_approval_attempt(requirement: ApprovalRequirement, groups: Sequence[ApproverGroup], approver: Approver,
                            decision: str, *, requester: str, release_creator: str,
                            approvals: Iterable[ApprovalLike], content_hash: str,
                            sent_hash: str | None = None, plan_hash: str | None = None,
                            sent_plan_hash: str | None = None) -> AttemptDecision:
    """Decide how to record an approval attempt (every attempt is recorded, counted or not).

    :param decision: "approve" or "reject".
    :param approvals: the attempts already recorded for the promotion.
    :param content_hash: the release's content hash.
    :param sent_hash: the content hash the approver was shown; None means "the current one".
    :param plan_hash: the hash of the live plan (deploy/preview.py), what would change now.
    :param sent_plan_hash: the plan hash the approver was shown; None means "the live one".

    Refusals, in order: eligibility (`eligibility`), then `approval.bound_to_other_release` when
    the approver saw other digests, then `approval.plan_changed` when an approval was given for a
    plan that is no longer the live one (a rejection stands whatever plan it saw), then
    `approval.duplicate` (duplicate=True) when the same user
    already has a counted attempt with the same decision for this content hash. A rejection after
    one's own approval is not a duplicate: it counts (and rejects) -- a rejection ends the promotion.
    """
    if decision not in DECISIONS:
        raise ValueError(f"an approval decision is 'approve' or 'reject', not {decision!r}")
    refusal = eligibility(requirement, groups, approver, requester=requester, release_creator=release_creator)
    if refusal is not None:
        return AttemptDecision(False, refusal, False)
    if sent_hash is not None and sent_hash != content_hash:
        return AttemptDecision(False, BOUND_TO_OTHER_RELEASE, False)
    if decision == APPROVE and None not in (plan_hash, sent_plan_hash) and plan_hash != sent_plan_hash:
        return AttemptDecision(False, PLAN_CHANGED, False)
    for row in approvals:
        if _counts(row, content_hash) and row.approver == approver.user and row.decision == decision:
            return AttemptDecision(False, DUPLICATE, True)
    return AttemptDecision(True, None, False)
