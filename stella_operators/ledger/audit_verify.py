"""Walk the hash-chained audit log and name what was done to it: changed, removed, inserted, reordered.

Pure functions over rows (anything with the AuditEvent attributes, in `seq` order), so they run
on rows read from any database, or on rows a test tampered with, without a database.

What each tampering leaves behind (each event's hash covers its content and the previous hash):
- changed: an event's content no longer hashes to its stored hash; or, if the attacker also
  recomputed that hash, the next event still links to the old one while `seq` runs on without a gap;
- removed: an event links to a hash that no event has, and `seq` jumps (a deleted row leaves its
  number unused);
- inserted: the event after it links past it, to the event before it;
- reordered: two neighbours link to each other the wrong way round (`seq` was swapped).
Gaps in `seq` alone are not a problem: PostgreSQL sequences skip numbers on rolled-back inserts.
Events cut off the end leave no trace in the chain: only a checkpoint kept elsewhere shows that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from stella_operators.ledger.audit import GENESIS_HASH, chain_hash


class AuditRow(Protocol):
    """One audit event as stored (AuditEvent, or a database row with the same columns)."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def detail(self) -> dict[str, Any]: ...
    @property
    def previous_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


class ProblemKind(StrEnum):
    CHANGED = "changed"
    REMOVED = "removed"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CUT = "cut"  # events missing after the end, found only against a checkpoint (audit_checkpoint.py)


@dataclass(frozen=True)
class ChainProblem:
    kind: ProblemKind
    seq: int  # the event the problem is reported at (the first of a reordered pair)
    message: str

    def line(self) -> str:
        return f"{self.kind.value.upper()}: {self.message}"


@dataclass(frozen=True)
class ChainReport:
    events: int
    head: str  # hash of the last event (GENESIS_HASH for an empty log)
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None


def _short(digest: str) -> str:
    return digest[:12]


def _name(row: AuditRow) -> str:
    return f"event {row.seq} ({row.action} {row.subject})"


def _hashes_to_itself(row: AuditRow) -> bool:
    return chain_hash(row.previous_hash, row.at, row.actor, row.action, row.subject, row.detail) == row.hash


class _Walk:
    """The rows in `seq` order plus the indexes every check needs (built once: O(n) overall)."""

    def __init__(self, rows: Sequence[AuditRow]) -> None:
        self.rows = sorted(rows, key=lambda r: r.seq)
        self.by_hash = {r.hash: r for r in self.rows}
        self.followers: dict[str, int] = {}
        for r in self.rows:
            self.followers[r.previous_hash] = self.followers.get(r.previous_hash, 0) + 1


def _changed(row: AuditRow) -> ChainProblem:
    return ChainProblem(ProblemKind.CHANGED, row.seq,
                        f"{_name(row)}: its content no longer hashes to its stored hash {_short(row.hash)}")


def _inserted(row: AuditRow, anchor: AuditRow | None) -> ChainProblem:
    where = f"event {anchor.seq}" if anchor is not None else "the start of the log"
    return ChainProblem(ProblemKind.INSERTED, row.seq,
                        f"{_name(row)} does not belong: the chain runs past it, from {where} to the event after it")


def _broken_link(walk: _Walk, i: int) -> ChainProblem:
    """Why rows[i] does not link to the last good event, when it is neither half of a swapped pair
    nor followed by an event that links past it."""
    row = walk.rows[i]
    before = walk.rows[i - 1] if i else None
    target = walk.by_hash.get(row.previous_hash)
    if target is not None:
        if walk.followers[row.previous_hash] > 1:  # a second event claims target's place: a fork
            return ChainProblem(ProblemKind.INSERTED, row.seq,
                                f"{_name(row)} does not belong: it links to event {target.seq}, "
                                f"which another event already follows")
        return ChainProblem(ProblemKind.REORDERED, row.seq,
                            f"{_name(row)} is out of order: it follows event {target.seq}, "
                            f"not event {before.seq if before else 'none (it should be first)'}")
    if before is None:
        if row.seq > 1:
            return ChainProblem(ProblemKind.REMOVED, row.seq,
                                f"events before {row.seq} are missing: the first event links to "
                                f"{_short(row.previous_hash)}, which no event has")
        return ChainProblem(ProblemKind.CHANGED, row.seq,
                            f"{_name(row)}: its previous hash was changed (the first event links to the genesis hash)")
    if row.seq > before.seq + 1:
        return ChainProblem(ProblemKind.REMOVED, row.seq,
                            f"events between {before.seq} and {row.seq} are missing: event {row.seq} "
                            f"links to {_short(row.previous_hash)}, which no event has")
    return ChainProblem(ProblemKind.CHANGED, before.seq,
                        f"{_name(before)} was rewritten and re-hashed: event {row.seq} still links to its "
                        f"old hash {_short(row.previous_hash)}, not to {_short(before.hash)}")


def verify_audit_rows(rows: Sequence[AuditRow]) -> ChainReport:
    """Every problem in the chain, in `seq` order (the first is the earliest tampering)."""
    walk = _Walk(rows)
    rows = walk.rows
    problems: list[ChainProblem] = []
    last_good: AuditRow | None = None  # the event the next genuine event must link to
    i = 0
    while i < len(rows):
        row = rows[i]
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        expected = last_good.hash if last_good is not None else GENESIS_HASH
        if row.previous_hash == expected:
            # Two events claim the same predecessor: the one no event follows is the extra one
            # (if that is `nxt`, it is reported when the walk reaches it).
            if (nxt is not None and nxt.previous_hash == expected
                    and not (walk.followers.get(row.hash) and not walk.followers.get(nxt.hash))):
                problems.append(_inserted(row, last_good))
                i += 1
                continue
            if not _hashes_to_itself(row):
                problems.append(_changed(row))
            last_good, i = row, i + 1
            continue
        if nxt is not None and row.previous_hash == nxt.hash and nxt.previous_hash == expected:
            problems.append(ChainProblem(ProblemKind.REORDERED, row.seq,
                                         f"events {row.seq} and {nxt.seq} are swapped: {_name(row)} "
                                         f"links to {_name(nxt)}, which comes after it"))
            last_good, i = row, i + 2
            continue
        if nxt is not None and nxt.previous_hash == expected:
            problems.append(_inserted(row, last_good))
            i += 1
            continue
        problems.append(_broken_link(walk, i))
        if not _hashes_to_itself(row):
            problems.append(_changed(row))
        last_good, i = row, i + 1  # carry on from here so later problems are found too
    return ChainReport(len(rows), rows[-1].hash if rows else GENESIS_HASH, tuple(problems))


def report_lines(report: ChainReport) -> list[str]:
    """What `stella audit verify` prints: one line per problem, or one ok line."""
    if report.ok:
        return [f"ok: {report.events} events, head {report.head}"]
    return [p.line() for p in report.problems]
