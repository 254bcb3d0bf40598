"""Issue 9 item 3: `verify_audit_rows` names what was done to the audit chain.

Chains are built in memory and tampered with as an attacker holding the database would
(edit a row, delete one, slip one in, swap two); each must be named with the right kind and event.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

from stella_operators.ledger.audit import GENESIS_HASH, AuditEvent, chain_hash
from stella_operators.ledger.audit_verify import (
    ProblemKind,
    report_lines,
    verify_audit_rows,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def chain(n: int, start_seq: int = 1, previous: str = GENESIS_HASH) -> list[AuditEvent]:
    events = []
    for k in range(n):
        seq, at = start_seq + k, T0 + timedelta(seconds=start_seq + k)
        detail = {"step": seq}
        digest = chain_hash(previous, at, "alice", "promotion.transition", f"promotion:p{seq}", detail)
        events.append(AuditEvent(seq, at, "alice", "promotion.transition", f"promotion:p{seq}", detail,
                                 previous, digest))
        previous = digest
    return events


def rehashed(event: AuditEvent, **changes: object) -> AuditEvent:
    """`event` with `changes` and its hash recomputed, as a careful forger would."""
    e = dataclasses.replace(event, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(e, hash=chain_hash(e.previous_hash, e.at, e.actor, e.action, e.subject, e.detail))


def kinds(rows: list[AuditEvent]) -> list[tuple[ProblemKind, int]]:
    return [(p.kind, p.seq) for p in verify_audit_rows(rows).problems]


def test_intact_chain_is_ok_with_count_and_head() -> None:
    rows = chain(5)
    report = verify_audit_rows(rows)
    assert report.ok and report.first is None
    assert report_lines(report) == [f"ok: 5 events, head {rows[-1].hash}"]
    assert report_lines(verify_audit_rows([])) == [f"ok: 0 events, head {GENESIS_HASH}"]


def test_gaps_in_seq_alone_are_not_tampering() -> None:
    """PostgreSQL sequences skip numbers when an appending transaction rolls back."""
    rows = chain(6)
    rows = rows[:2] + [dataclasses.replace(r, seq=r.seq + 10) for r in rows[2:]]
    assert verify_audit_rows(rows).ok


def test_changed_event_is_named() -> None:
    rows = chain(5)
    rows[2] = dataclasses.replace(rows[2], detail={"step": 3, "approved_by": "mallory"})
    report = verify_audit_rows(rows)
    assert kinds(rows) == [(ProblemKind.CHANGED, 3)]
    assert report_lines(report) == [
        (f"CHANGED: event 3 (promotion.transition promotion:p3): its content no longer hashes to its "
         f"stored hash {rows[2].hash[:12]}")]


def test_changed_and_rehashed_event_is_named() -> None:
    rows = chain(5)
    rows[2] = rehashed(rows[2], actor="mallory")
    assert kinds(rows) == [(ProblemKind.CHANGED, 3)]
    assert "re-hashed: event 4 still links to its old hash" in verify_audit_rows(rows).problems[0].message


def test_removed_event_is_named() -> None:
    rows = chain(6)
    del rows[2]
    assert kinds(rows) == [(ProblemKind.REMOVED, 4)]
    assert verify_audit_rows(rows).problems[0].line().startswith("REMOVED: events between 2 and 4 are missing")
    two_gone = chain(6)
    del two_gone[2:4]
    assert kinds(two_gone) == [(ProblemKind.REMOVED, 5)]
    first_gone = chain(4)[1:]
    assert kinds(first_gone) == [(ProblemKind.REMOVED, 2)]


def test_inserted_event_that_links_is_named() -> None:
    """An extra event after event 2 (later events renumbered) whose previous hash is event 2's."""
    rows = chain(5)
    extra = rehashed(rows[2], seq=3, actor="mallory", detail={"approved_by": "mallory"},
                     previous_hash=rows[1].hash)
    forged = rows[:2] + [extra] + [dataclasses.replace(r, seq=r.seq + 1) for r in rows[2:]]
    report = verify_audit_rows(forged)
    assert kinds(forged) == [(ProblemKind.INSERTED, 3)]
    assert report.problems[0].line().startswith("INSERTED: event 3 (promotion.transition promotion:p3) does not "
                                                "belong: the chain runs past it, from event 2")


def test_inserted_event_with_a_made_up_link_is_named() -> None:
    rows = chain(5)
    rows = rows[:2] + [dataclasses.replace(r, seq=r.seq + 10) for r in rows[2:]]  # a gap, as on PostgreSQL
    extra = rehashed(rows[2], seq=5, previous_hash="f" * 64, detail={"forged": True})
    forged = rows[:2] + [extra] + rows[2:]
    assert kinds(forged) == [(ProblemKind.INSERTED, 5)]


def test_inserted_event_at_the_end_claiming_an_earlier_place_is_named() -> None:
    rows = chain(4)
    extra = rehashed(rows[2], seq=5, previous_hash=rows[1].hash, detail={"forged": True})
    assert kinds(rows + [extra]) == [(ProblemKind.INSERTED, 5)]


def test_swapped_pair_is_named() -> None:
    for a in range(4):  # at the start, in the middle and at the end
        rows = chain(5)
        first, second = rows[a], rows[a + 1]
        rows[a], rows[a + 1] = dataclasses.replace(second, seq=first.seq), dataclasses.replace(first, seq=second.seq)
        report = verify_audit_rows(rows)
        assert kinds(rows) == [(ProblemKind.REORDERED, a + 1)], a
        assert report.problems[0].line().startswith(f"REORDERED: events {a + 1} and {a + 2} are swapped")


def test_every_problem_is_listed_earliest_first() -> None:
    rows = chain(10)
    rows[1] = dataclasses.replace(rows[1], subject="promotion:other")
    del rows[4]  # event 5
    assert (rows[6].seq, rows[7].seq) == (8, 9)
    rows[6], rows[7] = dataclasses.replace(rows[7], seq=8), dataclasses.replace(rows[6], seq=9)
    report = verify_audit_rows(rows)
    assert kinds(rows) == [(ProblemKind.CHANGED, 2), (ProblemKind.REMOVED, 6), (ProblemKind.REORDERED, 8)]
    assert report.first is not None and report.first.kind is ProblemKind.CHANGED
    assert len(report_lines(report)) == 3


def test_ten_thousand_events_verify_in_well_under_a_second() -> None:
    rows = chain(10_000)
    started = time.perf_counter()
    assert verify_audit_rows(rows).ok
    assert time.perf_counter() - started < 2.0  # generous on a shared 2-core machine; the goal is 0.5 s
