"""Approvals racing on one promotion, on a real PostgreSQL server and on SQLite.

Eight OS processes per round act on one promotion waiting for 2 approvals at the same moment:
approvers (one of them twice, from two processes), a rejecter, and two "settlers" that do what the
approval trigger and sensor do (one fires after it saw the tally settle, one fires "approved"
blindly, as a stale or forged event would). Whatever the interleaving, the promotion's final status
equals the tally of what the ledger stored, each approver was told the truth, a counted rejection
always wins, and `approval` evidence exists exactly for the counted attempts.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import UTC, datetime

import pytest

from stella_operators.approvals.policy import Approver, tally
from stella_operators.approvals.service import approval_state, effective_requirement, settle_approval, submit_approval
from stella_operators.estate.loader import parse_estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release

ROUNDS = 20
ESTATE = parse_estate("""
registries: [{host: registry.local, scheme: http}]
approver_groups:
  - {name: release-managers, users: [bob, carol, dave, erin, frank]}
apps:
  - name: shop
    components: [{name: web, repository: registry.local/shop/web}]
environments:
  - name: prod
    requires: []
    approvals: {required: 2, groups: [release-managers], separation_of_duties: true}
    targets: [{name: shop-1, type: docker, connection: unused}]
""")
# (what, user) for the eight processes; shuffled every round.
ROLES = [("approve", "bob"), ("approve", "bob"), ("approve", "carol"), ("approve", "dave"),
         ("reject", "erin"), ("approve", "frank"), ("settle_seen", ""), ("settle_blind", "")]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("fresh_postgres_url")


def _release(n: int) -> Release:
    return Release.seal(id=f"rel-shop-{n}", app="shop", name=f"shop-1.{n}.0", created_at=datetime.now(UTC),
                        created_by="ci-bot", source={},
                        components=[ComponentDigest(name="web", repository="registry.local/shop/web",
                                                    digest=f"sha256:{n + 1:064x}", tag=f"1.{n}.0")])


def _waiting_promotion(ledger: Ledger, n: int) -> str:
    release = ledger.add_release(_release(n))
    promo = ledger.create_promotion("shop", "prod", release.id, "alice", "race", "promote_shop", f"run-{n}")
    ledger.transition(promo.id, S.EVALUATING, actor="alice")
    ledger.set_decision(promo.id, {"verdict": "pass", "approvals_required": 2})
    ledger.transition(promo.id, S.AWAITING_APPROVAL, actor="stella")
    return promo.id


def _settle(ledger: Ledger, key: SigningKey, pid: str, event: dict) -> str:
    return settle_approval(ESTATE, ledger, key, pid, event)


def _act(url: str, key_pem: bytes, pid: str, role: tuple[str, str], barrier, out) -> None:
    """One process: wait for the others, then approve, reject or settle; report what it was told."""
    what, user = role
    key = SigningKey.from_pem(key_pem)
    ledger = Ledger(url)
    try:
        barrier.wait(30)
        time.sleep(random.uniform(0, 0.01))
        if what in ("approve", "reject"):
            result = submit_approval(ESTATE, ledger, key, pid, Approver(user), what, f"{what} by {user}")
            out.put((what, user, "ok", result.counted, result.status))
        elif what == "settle_seen":
            deadline = time.monotonic() + 10
            event = {"status": "approved"}
            while time.monotonic() < deadline:
                if ledger.get_promotion(pid).status != S.AWAITING_APPROVAL:
                    break
                st = approval_state(ESTATE, ledger, pid)
                if st.status != "pending":
                    event = {"status": st.status, "approvers": list(st.approvers), "rejected_by": st.rejected_by}
                    break
                time.sleep(0.002)
            out.put((what, user, "ok", None, _settle(ledger, key, pid, event)))
        else:
            time.sleep(random.uniform(0, 0.03))
            out.put((what, user, "ok", None, _settle(ledger, key, pid, {"status": "approved", "approvers": []})))
    except Exception as exc:  # reported to the test, which decides whether it is acceptable
        out.put((what, user, "error", type(exc).__name__, str(exc)))
    finally:
        ledger.close()


def _check_round(ledger: Ledger, pid: str, reports: list[tuple]) -> list[str]:
    """What went wrong in this round (empty: nothing)."""
    problems: list[str] = []
    promo = ledger.get_promotion(pid)
    release = ledger.get_release(promo.release_id)
    requirement, _ = effective_requirement(ESTATE, promo)
    rows = ledger.approvals_for(pid)
    state = tally(requirement, rows, release.content_hash)
    expected = {"approved": S.APPROVED, "rejected": S.REJECTED, "pending": S.AWAITING_APPROVAL}[state.status]
    if promo.status != expected:
        problems.append(f"status {promo.status} but the stored tally says {state.status}")
    for what, user, outcome, counted, told in reports:
        if outcome == "error":
            problems.append(f"{what} by {user} raised {counted}: {told}")
        if what == "reject" and counted and promo.status != S.REJECTED:
            problems.append(f"{user} was told the rejection counted, yet the promotion is {promo.status}")
    # What each approver was told matches what was stored for them.
    for what, user in {(w, u) for w, u, *_ in reports if w in ("approve", "reject")}:
        told = sorted(bool(c) for w, u, o, c, _ in reports if (w, u) == (what, user) and o == "ok")
        stored = sorted(r.counted for r in rows if (r.decision, r.approver) == (what, user))
        if told != stored:
            problems.append(f"{what} by {user}: told counted={told}, stored counted={stored}")
    counted_evidence = {r.evidence_id for r in rows if r.counted}
    if None in counted_evidence:
        problems.append("a counted approval has no evidence")
    approval_evidence = [e.id for e in ledger.evidence_for(promotion_id=pid) if e.type == "approval"
                         and e.content.get("decision") in ("approve", "reject")]
    if sorted(approval_evidence) != sorted(r.evidence_id for r in rows if r.counted):
        problems.append(f"{len(approval_evidence)} approval evidence records for "
                        f"{sum(r.counted for r in rows)} counted approvals")
    bob = [r for r in rows if r.approver == "bob" and r.decision == "approve"]
    refusals = sorted(str(r.refusal) for r in bob if not r.counted)
    if not (sum(r.counted for r in bob) == 1 and refusals in (["approval.duplicate"], ["approval.closed"])
            or refusals == ["approval.closed"] * 2):
        problems.append(f"bob approved from two processes: counted {[r.counted for r in bob]}, refusals {refusals}")
    return problems


def _race(ledger: Ledger, url: str, key: SigningKey, pid: str, roles: list[tuple[str, str]]) -> list[tuple]:
    """Run one round: a process per role, released at once; what each was told."""
    ctx = multiprocessing.get_context("fork")
    ledger.engine.dispose()  # no pooled connection crosses the fork
    barrier, out = ctx.Barrier(len(roles)), ctx.Queue()
    procs = [ctx.Process(target=_act, args=(url, key.to_pem(), pid, r, barrier, out)) for r in roles]
    for p in procs:
        p.start()
    reports = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    return reports


@pytest.fixture
def ledger_and_key(ledger_url):
    key = SigningKey.generate()
    with Ledger.open(ledger_url) as ledger:
        ledger.register_key(key.key_id, key.public_pem())
        yield ledger, key


def test_racing_approvals_rejections_and_settlements_end_where_the_tally_says(ledger_and_key, ledger_url):
    ledger, key = ledger_and_key
    started = time.monotonic()
    failures: list[str] = []
    closed_rounds = 0
    for n in range(ROUNDS):
        pid = _waiting_promotion(ledger, n)
        reports = _race(ledger, ledger_url, key, pid, random.sample(ROLES, len(ROLES)))
        failures += [f"round {n}: {p}" for p in _check_round(ledger, pid, reports)]
        closed_rounds += any(a.refusal == "approval.closed" for a in ledger.approvals_for(pid))
    assert not failures, "\n".join(failures)
    assert closed_rounds > 0  # the rounds did race: attempts arrived after the promotion settled
    assert time.monotonic() - started < 60


def test_one_user_approving_from_many_processes_counts_once_with_one_evidence(ledger_and_key, ledger_url):
    ledger, key = ledger_and_key
    for n in range(10):
        pid = _waiting_promotion(ledger, n)
        reports = _race(ledger, ledger_url, key, pid, [("approve", "bob")] * 8)
        rows = ledger.approvals_for(pid)
        assert [r[2] for r in reports] == ["ok"] * 8, reports
        assert sorted(bool(r[3]) for r in reports) == [False] * 7 + [True]     # told: one counted
        assert sorted((r.counted, r.refusal) for r in rows) == [(False, "approval.duplicate")] * 7 + [(True, None)]
        evidence = [e for e in ledger.evidence_for(promotion_id=pid) if e.type == "approval"]
        assert [e.id for e in evidence] == [r.evidence_id for r in rows if r.counted]
        assert ledger.get_promotion(pid).status == S.AWAITING_APPROVAL          # one person is not two approvals
