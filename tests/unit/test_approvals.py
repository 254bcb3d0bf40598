"""The approval rules (pure): eligibility, separation of duties, tally, and what an attempt records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from stella_operators.approvals import (
    BOUND_TO_OTHER_RELEASE,
    CREATOR_CANNOT_APPROVE,
    DUPLICATE,
    INSUFFICIENT,
    NOT_IN_GROUPS,
    REJECTED,
    REQUESTER_CANNOT_APPROVE,
    ApprovalState,
    Approver,
    AttemptDecision,
    decide_approval_attempt,
    eligibility,
    tally,
)
from stella_operators.estate.models import ApprovalRequirement, ApproverGroup
from stella_operators.ledger.records import Approval

H = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64

GROUPS = [
    ApproverGroup(name="release-managers", users=["bob", "carol"], roles=["ReleaseManager"]),
    ApproverGroup(name="sre", users=["dave"], roles=["SRE"]),
    ApproverGroup(name="interns", users=["ivan"], roles=["Viewer"]),
]


def req(required: int = 2, groups=("release-managers", "sre"), sod: bool = True) -> ApprovalRequirement:
    return ApprovalRequirement(required=required, groups=list(groups), separation_of_duties=sod)


def who(user: str, *roles: str) -> Approver:
    return Approver(user, frozenset(roles))


@dataclass(frozen=True)
class Row:
    approver: str
    decision: str = "approve"
    content_hash: str = H
    counted: bool = True
    refusal: str | None = None


def elig(approver: Approver, requirement: ApprovalRequirement | None = None, *, requester: str = "alice",
         creator: str = "ci-bot") -> str | None:
    return eligibility(requirement or req(), GROUPS, approver, requester=requester, release_creator=creator)


def attempt(approver: Approver, decision: str = "approve", approvals=(), *, sent: str | None = None,
            requirement: ApprovalRequirement | None = None, requester: str = "alice",
            creator: str = "ci-bot") -> AttemptDecision:
    return decide_approval_attempt(requirement or req(), GROUPS, approver, decision, requester=requester,
                                   release_creator=creator, approvals=list(approvals), content_hash=H, sent_hash=sent)


# -- Approver -------------------------------------------------------------------------------------


def test_approver_is_an_immutable_identity():
    a = Approver("bob", {"SRE", "Op"})  # any iterable of roles becomes a frozenset
    assert a.roles == frozenset({"SRE", "Op"}) and hash(a) == hash(Approver("bob", frozenset({"Op", "SRE"})))
    assert Approver("bob").roles == frozenset()
    with pytest.raises(ValueError):
        Approver("")
    with pytest.raises(TypeError):
        Approver("bob", "SRE")


# -- eligibility ----------------------------------------------------------------------------------


def test_listed_user_or_listed_role_of_a_required_group_may_approve():
    assert elig(who("bob")) is None                         # user of release-managers
    assert elig(who("dave")) is None                        # user of sre
    assert elig(who("zoe", "SRE")) is None                  # role of sre
    assert elig(who("zoe", "Op", "ReleaseManager")) is None  # one matching role is enough


def test_everyone_else_is_not_in_groups():
    assert elig(who("zoe")) == NOT_IN_GROUPS
    assert elig(who("zoe", "Op", "Admin")) == NOT_IN_GROUPS
    # Members of a group the requirement does not name do not count, by user or by role.
    assert elig(who("ivan")) == NOT_IN_GROUPS
    assert elig(who("zoe", "Viewer")) == NOT_IN_GROUPS
    # A requirement naming only one group admits only that group.
    assert elig(who("dave"), req(groups=["release-managers"])) == NOT_IN_GROUPS
    # A requirement naming no group (or an undefined one) admits nobody: fail closed.
    assert elig(who("bob"), req(groups=[])) == NOT_IN_GROUPS
    assert elig(who("bob"), req(groups=["ghosts"])) == NOT_IN_GROUPS


def test_user_names_and_roles_are_compared_exactly():
    # Airflow user names are identities: "Bob" is not "bob", and " bob" is nobody.
    assert elig(who("Bob")) == NOT_IN_GROUPS
    assert elig(who("BOB")) == NOT_IN_GROUPS
    assert elig(who(" bob")) == NOT_IN_GROUPS
    assert elig(who("zoe", "sre")) == NOT_IN_GROUPS
    assert elig(who("zoe", "releasemanager")) == NOT_IN_GROUPS


def test_separation_of_duties_refuses_requester_and_release_creator():
    assert elig(who("bob"), requester="bob") == REQUESTER_CANNOT_APPROVE
    assert elig(who("bob"), creator="bob") == CREATOR_CANNOT_APPROVE
    # Whatever their group membership (checked first, so the reason names the real obstacle).
    assert elig(who("alice", "SRE")) == REQUESTER_CANNOT_APPROVE
    assert elig(who("zoe"), requester="zoe") == REQUESTER_CANNOT_APPROVE
    assert elig(who("bob"), requester="bob", creator="bob") == REQUESTER_CANNOT_APPROVE
    # Exact comparison here too: a differently cased name is another identity.
    assert elig(who("bob"), requester="Bob") is None


def test_without_separation_of_duties_requester_and_creator_may_approve_if_in_groups():
    no_sod = req(sod=False)
    assert elig(who("bob"), no_sod, requester="bob") is None
    assert elig(who("bob"), no_sod, creator="bob") is None
    assert elig(who("alice"), no_sod) == NOT_IN_GROUPS  # still has to be in a group


# -- tally ----------------------------------------------------------------------------------------


def test_pending_until_enough_distinct_approvers():
    assert tally(req(2), [], H) == ApprovalState("pending", (), 2, None, (INSUFFICIENT,))
    assert tally(req(2), [Row("bob")], H) == ApprovalState("pending", ("bob",), 1, None, (INSUFFICIENT,))
    assert tally(req(2), [Row("bob"), Row("dave")], H) == ApprovalState("approved", ("bob", "dave"), 0, None, ())
    more = tally(req(2), [Row("dave"), Row("bob"), Row("carol")], H)
    assert more.status == "approved" and more.approvers == ("dave", "bob", "carol") and more.needed == 0


def test_one_person_counts_once():
    state = tally(req(2), [Row("bob"), Row("bob"), Row("bob")], H)
    assert state.status == "pending" and state.approvers == ("bob",) and state.needed == 1


def test_refused_and_uncounted_attempts_do_not_count():
    rows = [Row("alice", counted=False, refusal=REQUESTER_CANNOT_APPROVE),
            Row("zoe", counted=False, refusal=NOT_IN_GROUPS),
            Row("bob"), Row("bob", counted=False, refusal=DUPLICATE),
            Row("carol", counted=True, refusal="approval.something")]  # inconsistent row: refusal wins
    state = tally(req(2), rows, H)
    assert state.status == "pending" and state.approvers == ("bob",) and state.reasons == (INSUFFICIENT,)
    # Refused rejections do not reject either.
    assert tally(req(1), [Row("zoe", "reject", counted=False, refusal=NOT_IN_GROUPS), Row("bob")], H).status == \
        "approved"


def test_approval_for_another_content_hash_is_void():
    state = tally(req(2), [Row("bob", content_hash=OTHER), Row("dave")], H)
    assert state.status == "pending" and state.approvers == ("dave",) and state.needed == 1
    assert state.reasons == (INSUFFICIENT, BOUND_TO_OTHER_RELEASE)
    # Surfaced even when enough approvals for this release exist.
    approved = tally(req(1), [Row("bob", content_hash=OTHER), Row("dave")], H)
    assert approved.status == "approved" and approved.reasons == (BOUND_TO_OTHER_RELEASE,)
    # A rejection for other digests is void too (only rows for this release count).
    assert tally(req(1), [Row("carol", "reject", content_hash=OTHER), Row("dave")], H).status == "approved"


def test_any_counted_rejection_rejects_even_with_enough_approvals():
    state = tally(req(1), [Row("bob"), Row("dave"), Row("carol", "reject"), Row("zoe", "reject")], H)
    assert state == ApprovalState("rejected", ("bob", "dave"), 0, "carol", (REJECTED,))
    assert tally(req(2), [Row("carol", "reject")], H) == ApprovalState("rejected", (), 2, "carol", (REJECTED,))
    # Even when nothing is required.
    assert tally(req(0), [Row("carol", "reject")], H).status == "rejected"
    # A person who approved and then rejected: the rejection stands.
    assert tally(req(1), [Row("bob"), Row("bob", "reject")], H).status == "rejected"


def test_nothing_required_is_approved():
    assert tally(req(0), [], H) == ApprovalState("approved", (), 0, None, ())
    assert tally(req(0, groups=[]), [Row("bob")], H).status == "approved"


def test_tally_reads_ledger_approval_records():
    at = datetime(2025, 3, 1, tzinfo=UTC)
    rows = [Approval(1, "prm-1", "bob", "approve", "", H, True, None, at),
            Approval(2, "prm-1", "alice", "approve", "", H, False, REQUESTER_CANNOT_APPROVE, at),
            Approval(3, "prm-1", "dave", "approve", "ok", H, True, None, at, "sha256:" + "e" * 64)]
    assert tally(req(2), rows, H).status == "approved"


def test_tally_refuses_an_unknown_decision():
    with pytest.raises(ValueError, match="unknown approval decision"):
        tally(req(1), [Row("bob", "lgtm")], H)


# -- decide_approval_attempt ----------------------------------------------------------------------


def test_eligible_attempt_counts():
    assert attempt(who("bob")) == AttemptDecision(True, None, False)
    assert attempt(who("zoe", "SRE"), "reject") == (True, None, False)
    assert attempt(who("bob"), sent=H) == (True, None, False)  # shown the current digests


def test_ineligible_attempts_are_refused_with_their_code():
    assert attempt(who("zoe")) == AttemptDecision(False, NOT_IN_GROUPS, False)
    assert attempt(who("alice", "SRE")) == (False, REQUESTER_CANNOT_APPROVE, False)
    assert attempt(who("bob"), creator="bob") == (False, CREATOR_CANNOT_APPROVE, False)
    assert attempt(who("bob"), "reject", requester="bob") == (False, REQUESTER_CANNOT_APPROVE, False)


def test_attempt_for_other_digests_is_refused():
    assert attempt(who("bob"), sent=OTHER) == AttemptDecision(False, BOUND_TO_OTHER_RELEASE, False)
    # Eligibility is reported first.
    assert attempt(who("zoe"), sent=OTHER) == (False, NOT_IN_GROUPS, False)


def test_same_user_approving_twice_counts_once():
    first = attempt(who("bob"))
    assert first.counted
    rows = [Row("bob")]
    second = attempt(who("bob"), approvals=rows)
    assert second == AttemptDecision(False, DUPLICATE, True)
    # Recorded as the attempt says, the tally still counts bob once.
    rows.append(Row("bob", counted=second.counted, refusal=second.refusal))
    assert tally(req(2), rows, H).approvers == ("bob",)
    # Someone else is no duplicate; nor is bob after only refused or void attempts.
    assert attempt(who("dave"), approvals=rows).counted
    assert attempt(who("bob"), approvals=[Row("bob", counted=False, refusal=NOT_IN_GROUPS)]).counted
    assert attempt(who("bob"), approvals=[Row("bob", content_hash=OTHER)]).counted


def test_rejecting_after_ones_own_approval_counts_and_rejects():
    rows = [Row("bob")]
    decision = attempt(who("bob"), "reject", approvals=rows)
    assert decision == AttemptDecision(True, None, False)
    rows.append(Row("bob", "reject"))
    assert tally(req(1), rows, H).status == "rejected"
    assert attempt(who("bob"), "reject", approvals=rows) == (False, DUPLICATE, True)


def test_attempt_decision_must_be_approve_or_reject():
    with pytest.raises(ValueError, match="'approve' or 'reject'"):
        attempt(who("bob"), "Approve")


def test_attempts_flow_into_tally():
    """A short story: requester, outsider, two approvers (one twice), then enough."""
    rows: list[Row] = []
    for approver, decision in [(who("alice"), "approve"), (who("zoe"), "approve"), (who("bob"), "approve"),
                               (who("bob"), "approve"), (who("zoe", "SRE"), "approve")]:
        counted, refusal, _ = attempt(approver, decision, rows)
        rows.append(Row(approver.user, decision, H, counted, refusal))
    assert [r.refusal for r in rows] == [REQUESTER_CANNOT_APPROVE, NOT_IN_GROUPS, None, DUPLICATE, None]
    assert tally(req(2), rows, H) == ApprovalState("approved", ("bob", "zoe"), 0, None, ())
