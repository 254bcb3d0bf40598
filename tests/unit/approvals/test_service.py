"""Approval use cases against a real SQLite ledger: the call that completes the quorum (or rejects)
settles the promotion, later attempts are refused as closed, the wait's end re-counts from the
ledger, a timeout fails closed with signed evidence, and refusals leave audit events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stella_operators.approvals import CLOSED, DUPLICATE, NOT_IN_GROUPS, Approver
from stella_operators.approvals.service import settle_approval, submit_approval
from stella_operators.estate.loader import parse_estate
from stella_operators.evidence import SigningKey, verify_evidence
from stella_operators.evidence.recorder import seal_release_evidence
from stella_operators.ledger import Ledger, LedgerError
from stella_operators.ledger.decisions import ApprovalAttempt, ApprovalWrite
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release

ESTATE = parse_estate("""
registries: [{host: registry.local, scheme: http}]
approver_groups:
  - {name: release-managers, users: [bob, carol, dave]}
apps:
  - name: shop
    components: [{name: web, repository: registry.local/shop/web}]
environments:
  - name: prod
    requires: []
    approvals: {required: 2, groups: [release-managers], separation_of_duties: true}
    targets: [{name: shop-1, type: docker, connection: unused}]
""")


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        yield ledger


@pytest.fixture
def key():
    return SigningKey.generate()


@pytest.fixture
def pid(ledger) -> str:
    release = ledger.add_release(Release.seal(
        id="rel-shop-1", app="shop", name="shop-1.0.0", created_at=datetime.now(UTC), created_by="ci-bot",
        source={}, components=[ComponentDigest(name="web", repository="registry.local/shop/web",
                                               digest="sha256:" + "1" * 64, tag="1.0.0")]))
    promo = ledger.create_promotion("shop", "prod", release.id, "alice", "ship", "promote_shop", "run-1")
    ledger.transition(promo.id, S.EVALUATING, actor="alice")
    ledger.set_decision(promo.id, {"verdict": "pass", "approvals_required": 2})
    ledger.transition(promo.id, S.AWAITING_APPROVAL, actor="stella")
    return promo.id


def submit(ledger, key, pid, user, decision="approve"):
    return submit_approval(ESTATE, ledger, key, pid, Approver(user), decision, f"{decision} by {user}")


def approval_evidence(ledger, pid):
    return [e for e in ledger.evidence_for(promotion_id=pid) if e.type == "approval"]


def test_the_approval_completing_the_quorum_settles_the_promotion(ledger, key, pid):
    first = submit(ledger, key, pid, "bob")
    assert (first.counted, first.status, first.state.needed) == (True, S.AWAITING_APPROVAL, 1)
    second = submit(ledger, key, pid, "carol")
    assert (second.counted, second.status, second.state.status) == (True, S.APPROVED, "approved")
    promo = ledger.get_promotion(pid)
    assert promo.status == S.APPROVED
    [event] = [e for e in ledger.audit_events(f"promotion:{pid}")
               if e.action == "promotion.transition" and e.detail["to"] == "approved"]
    assert event.actor == "carol" and event.detail["detail"]["approvers"] == ["bob", "carol"]
    # One signed record per counted approval, each named by its approval row.
    rows = ledger.approvals_for(pid)
    assert [e.id for e in approval_evidence(ledger, pid)] == [r.evidence_id for r in rows]
    assert all(verify_evidence(e, ledger.registered_keys()).ok for e in approval_evidence(ledger, pid))


def test_a_counted_rejection_settles_at_once_and_later_attempts_are_closed(ledger, key, pid):
    submit(ledger, key, pid, "bob")
    rejected = submit(ledger, key, pid, "dave", "reject")
    assert (rejected.counted, rejected.status) == (True, S.REJECTED)
    late = submit(ledger, key, pid, "carol")
    assert (late.counted, late.refusal, late.status, late.evidence_id) == (False, CLOSED, S.REJECTED, None)
    assert late.state.status == "rejected"
    assert ledger.get_promotion(pid).status == S.REJECTED
    # The late attempt is on record (and audited), without evidence.
    assert [(a.approver, a.counted, a.refusal) for a in ledger.approvals_for(pid)] == \
        [("bob", True, None), ("dave", True, None), ("carol", False, CLOSED)]
    assert len(approval_evidence(ledger, pid)) == 2


def test_refused_attempts_are_recorded_and_audited_without_evidence(ledger, key, pid):
    outsider = submit(ledger, key, pid, "zoe")
    requester = submit(ledger, key, pid, "alice")
    submit(ledger, key, pid, "bob")
    twice = submit(ledger, key, pid, "bob")
    assert (outsider.refusal, requester.refusal, twice.refusal, twice.duplicate) == \
        (NOT_IN_GROUPS, "approval.requester_cannot_approve", DUPLICATE, True)
    audited = [(e.actor, e.detail["counted"], e.detail["refusal"]) for e in ledger.audit_events(f"promotion:{pid}")
               if e.action == "approval.record"]
    assert audited == [("zoe", False, NOT_IN_GROUPS), ("alice", False, "approval.requester_cannot_approve"),
                       ("bob", True, None), ("bob", False, DUPLICATE)]
    assert len(approval_evidence(ledger, pid)) == 1
    assert ledger.get_promotion(pid).status == S.AWAITING_APPROVAL


def test_settling_recounts_and_never_trusts_the_event(ledger, key, pid):
    submit(ledger, key, pid, "bob")
    # A stale or forged "approved" changes nothing the ledger does not show.
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "approved", "approvers": ["bob", "mallory"]}) == \
        S.AWAITING_APPROVAL
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "rejected"}) == S.AWAITING_APPROVAL
    submit(ledger, key, pid, "carol", "reject")
    # Already settled by the rejection: an "approved" event cannot turn it around.
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "approved"}) == S.REJECTED
    assert ledger.get_promotion(pid).status == S.REJECTED


def test_a_timeout_fails_closed_with_signed_evidence(ledger, key, pid):
    submit(ledger, key, pid, "bob")
    deadline = "2026-01-01T00:00:00+00:00"
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "timeout", "deadline": deadline}) == S.FAILED
    promo = ledger.get_promotion(pid)
    assert promo.status == S.FAILED
    record = [e for e in approval_evidence(ledger, pid) if e.content["decision"] == "timeout"]
    assert len(record) == 1 and verify_evidence(record[0], ledger.registered_keys()).ok
    expected = {"reason": "approval.timeout", "approvers": ["bob"], "needed": 1, "deadline": deadline,
                "promotion_id": pid}
    assert {k: record[0].content.get(k) for k in expected} == expected
    [failed] = [e for e in ledger.audit_events(f"promotion:{pid}")
                if e.action == "promotion.transition" and e.detail["to"] == "failed"]
    assert failed.detail["detail"]["reason"] == "approval.timeout"
    assert failed.detail["detail"]["evidence_id"] == record[0].id
    # Settling again (a retried sensor) changes nothing and signs nothing more.
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "timeout", "deadline": deadline}) == S.FAILED
    assert len(approval_evidence(ledger, pid)) == 2  # bob's approval and the one timeout record


def test_a_timeout_loses_to_approvals_already_complete(ledger, key, pid):
    # Both approvals stored while the promotion was, say, not yet settled by an older version:
    ledger.record_approval(pid, "bob", "approve", "", ledger.get_release("rel-shop-1").content_hash, counted=True)
    ledger.record_approval(pid, "carol", "approve", "", ledger.get_release("rel-shop-1").content_hash, counted=True)
    assert settle_approval(ESTATE, ledger, key, pid, {"status": "timeout"}) == S.APPROVED


def test_attempt_on_a_promotion_not_yet_waiting_is_refused_as_closed(ledger, key, pid):
    other = ledger.create_promotion("shop", "prod", "rel-shop-1", "alice", "again", "promote_shop", "run-2")
    result = submit(ledger, key, other.id, "bob")
    assert (result.counted, result.refusal, result.status) == (False, CLOSED, S.REQUESTED)


def test_the_ledger_refuses_evidence_for_an_attempt_that_did_not_count(ledger, key, pid):
    release = ledger.get_release("rel-shop-1")
    ledger.register_key(key.key_id, key.public_pem())
    sealed = seal_release_evidence(key, "approval", release, {"approver": "zoe", "decision": "approve"})
    refused = ApprovalAttempt("zoe", "approve", "", release.content_hash, False, NOT_IN_GROUPS)
    with pytest.raises(LedgerError, match="only an approval attempt that counts"):
        ledger.write_approval_decision(pid, lambda promo, attempts: ApprovalWrite(refused, sealed))
    assert ledger.approvals_for(pid) == [] and approval_evidence(ledger, pid) == []
