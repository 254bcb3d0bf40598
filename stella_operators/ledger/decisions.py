"""Ledger methods for what decides a promotion: approvals and gate verdicts (deploy locks: locks.py).

A mixin that `Ledger` inherits (kept apart so store.py stays readable). Like every ledger mutation,
each method writes its audit event in the same transaction as the change.

Approvals and gate verdicts are append-only (the database refuses UPDATE and DELETE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from stella_operators.approvals.policy import DUPLICATE
from stella_operators.evidence.canonical import to_jsonable
from stella_operators.evidence.envelope import EvidenceRecord, assert_no_secrets
from stella_operators.gates.contract import GateVerdict
from stella_operators.ledger import records
from stella_operators.ledger.audit import append_audit
from stella_operators.ledger.errors import LedgerError, NotFound
from stella_operators.ledger.records import APPROVAL_DECISIONS, Approval
from stella_operators.ledger.tables import approvals, evidence, gate_verdicts, inserted_id, promotions
from stella_operators.promotion.model import Promotion
from stella_operators.promotion.state import PromotionStatus

P = promotions.c
A = approvals.c
G = gate_verdicts.c


def _promotion_status(conn: sa.Connection, promotion_id: str) -> PromotionStatus:
    status = conn.execute(sa.select(P.status).where(P.id == promotion_id)).scalar_one_or_none()
    if status is None:
        raise NotFound(f"no promotion with id {promotion_id!r}")
    return PromotionStatus(status)


def _lock_promotion(conn: sa.Connection, promotion_id: str) -> sa.Row[Any]:
    """The promotion's row, locked until the transaction ends (PostgreSQL; SQLite writers already hold
    the database's write lock)."""
    row = conn.execute(sa.select(promotions).where(P.id == promotion_id).with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"no promotion with id {promotion_id!r}")
    return row


@dataclass(frozen=True)
class ApprovalAttempt:
    """An approval attempt to store: counted, or refused with a stable reason code (never both)."""

    approver: str
    decision: str
    comment: str
    content_hash: str
    counted: bool
    refusal: str | None = None
    plan_hash: str | None = None  # the live deployment plan the attempt was given against (deploy/preview.py)

    def __post_init__(self) -> None:
        if self.decision not in APPROVAL_DECISIONS:
            raise LedgerError(f"an approval decision is 'approve' or 'reject', not {self.decision!r}")
        if not self.approver:
            raise LedgerError("an approval needs an approver")
        if not self.content_hash:
            raise LedgerError("an approval binds to a release content hash; none was given")
        if self.counted == (self.refusal is not None):
            raise LedgerError("an approval attempt either counts (no refusal) or is refused (with a reason code)"
                              f"; got counted={self.counted!r} and refusal={self.refusal!r}")


@dataclass(frozen=True)
class Settlement:
    """The promotion's status change that an approval decision calls for."""

    status: PromotionStatus
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalWrite:
    """What one approval decision writes, all or nothing: an attempt, the evidence sealing it (or
    sealing a settlement without an attempt, e.g. a timeout), and a settlement of the promotion."""

    attempt: ApprovalAttempt | None = None
    evidence: EvidenceRecord | None = None
    settle: Settlement | None = None


@dataclass(frozen=True)
class ApprovalWritten:
    """What `write_approval_decision` stored: the promotion and its attempts as the transaction left them."""

    promotion: Promotion
    attempt: Approval | None
    attempts: list[Approval]
    evidence_id: str | None


class GatesAlreadyDecided(LedgerError):
    """The promotion is past `evaluating`: its gate decision is on record and is not taken again."""


def _verdict_rows(promotion_id: str, items: Iterable[tuple[GateVerdict, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for verdict, inputs in items:
        inputs_json, details_json = to_jsonable(inputs), to_jsonable(verdict.details)
        assert_no_secrets(inputs_json, "inputs")  # kept forever, like evidence
        assert_no_secrets(details_json, "details")
        rows.append({"promotion_id": promotion_id, "gate_type": verdict.gate_type, "gate_name": verdict.gate_name,
                     "verdict": verdict.verdict.value, "reasons": list(verdict.reasons),
                     "message": verdict.message, "remedy": verdict.remedy, "details": details_json,
                     "inputs": inputs_json, "inputs_hash": verdict.inputs_hash,
                     "evaluated_at": verdict.evaluated_at})
    return rows


def _insert_verdicts(conn: sa.Connection, promotion_id: str, rows: list[dict[str, Any]], actor: str,
                     now: datetime) -> None:
    for values in rows:
        seq = inserted_id(conn.execute(gate_verdicts.insert().values(**values)))
        append_audit(conn, actor, "gate.verdict", f"promotion:{promotion_id}",
                     {"seq": seq, "gate_type": values["gate_type"], "gate_name": values["gate_name"],
                      "verdict": values["verdict"], "reasons": values["reasons"],
                      "inputs_hash": values["inputs_hash"], "evaluated_at": values["evaluated_at"]}, now)


class LedgerDecisions:
    """Approvals and gate verdicts. Needs `_write`, `_read` and `_clock` from `Ledger`."""

    _clock: Callable[[], datetime]
    _write: Callable[[], Any]
    _read: Callable[[], Any]
    _append_evidence_in: Callable[..., None]
    _transition_in: Callable[..., PromotionStatus]

    # -- approvals ------------------------------------------------------------------------------

    def record_approval(self, promotion_id: str, approver: str, decision: str, comment: str, content_hash: str,
                        *, counted: bool, refusal: str | None = None,
                        evidence_id: str | None = None) -> Approval:
        """Record one approval attempt, counted or refused (decide which with approvals.decide_approval_attempt).

        `counted` holds exactly when `refusal` is None. A counted attempt by someone who already has a
        counted one with the same decision is stored as not counted with refusal `approval.duplicate`
        (also when two requests race: the database keeps one counted per person and decision); the
        returned Approval says what was stored. `evidence_id`, if given, must already be in the ledger.
        Approvals that change the promotion go through `write_approval_decision` instead.
        """
        attempt = ApprovalAttempt(approver, decision, comment, content_hash, counted, refusal)
        now = self._clock()
        with self._write() as conn:
            _lock_promotion(conn, promotion_id)
            if evidence_id is not None and conn.execute(
                    sa.select(evidence.c.id).where(evidence.c.id == evidence_id)).one_or_none() is None:
                raise NotFound(f"no evidence with id {evidence_id!r}; append the approval's evidence first")
            seq = self._insert_attempt(conn, promotion_id, attempt, evidence_id, now, downgrade_duplicate=True)
            row = conn.execute(sa.select(approvals).where(A.seq == seq)).one()
        return records.approval_from_row(row)

    def write_approval_decision(self, promotion_id: str,
                                plan: Callable[[Promotion, list[Approval]], ApprovalWrite]) -> ApprovalWritten:
        """Read the promotion and its attempts, let `plan` decide, and write what it says: ONE transaction.

        The promotion row is locked first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite writers
        hold the database write lock from BEGIN), so every decision about one promotion's approvals
        -- an attempt, the settlement its tally calls for, a timeout -- sees the one before it and
        nothing slips in between. `plan` runs inside the transaction: keep it pure and quick (the
        approval rules, and signing, which is local crypto). Evidence is stored in the same
        transaction as the attempt it seals, so an attempt that did not count leaves no evidence.
        """
        now = self._clock()
        with self._write() as conn:
            row = _lock_promotion(conn, promotion_id)
            attempts = [records.approval_from_row(r) for r in conn.execute(
                sa.select(approvals).where(A.promotion_id == promotion_id).order_by(A.seq))]
            write = plan(records.promotion_from_row(row), attempts)
            if write.evidence is not None and write.attempt is not None and not write.attempt.counted:
                raise LedgerError("evidence seals only an approval attempt that counts")
            evidence_id = None
            if write.evidence is not None:
                self._append_evidence_in(conn, write.evidence, promotion_id, row.release_id,
                                         write.attempt.approver if write.attempt else "stella")
                evidence_id = write.evidence.id
            seq = None
            if write.attempt is not None:
                seq = self._insert_attempt(conn, promotion_id, write.attempt,
                                           evidence_id if write.attempt.counted else None, now,
                                           downgrade_duplicate=False)
            if write.settle is not None:
                detail = dict(write.settle.detail, **({"evidence_id": evidence_id} if evidence_id else {}))
                self._transition_in(conn, promotion_id, row.status, write.settle.status,
                                    write.settle.actor, detail, now)
            promo = records.promotion_from_row(conn.execute(sa.select(promotions).where(P.id == promotion_id)).one())
            attempts = [records.approval_from_row(r) for r in conn.execute(
                sa.select(approvals).where(A.promotion_id == promotion_id).order_by(A.seq))]
        attempt = next((a for a in attempts if a.seq == seq), None)
        return ApprovalWritten(promo, attempt, attempts, evidence_id)

    def _insert_attempt(self, conn: sa.Connection, promotion_id: str, attempt: ApprovalAttempt,
                        evidence_id: str | None, now: datetime, *, downgrade_duplicate: bool) -> int:
        counted, refusal = attempt.counted, attempt.refusal
        values = {"promotion_id": promotion_id, "approver": attempt.approver, "decision": attempt.decision,
                  "comment": attempt.comment or "", "content_hash": attempt.content_hash, "at": now,
                  "evidence_id": evidence_id, "plan_hash": attempt.plan_hash}
        seq = None
        if counted:
            try:
                with conn.begin_nested():
                    seq = inserted_id(conn.execute(approvals.insert().values(**values, counted=True,
                                                                             refusal=None)))
            except IntegrityError:
                # Only the one-counted-per-person index can refuse it here (the rest was checked above).
                if self._counted(conn, promotion_id, attempt.approver, attempt.decision) is None:
                    raise
                if not downgrade_duplicate:
                    raise LedgerError(f"promotion {promotion_id}: {attempt.approver} already has a counted "
                                      f"{attempt.decision}; the decision was planned on stale attempts") from None
                counted, refusal = False, DUPLICATE
        if seq is None:
            seq = inserted_id(conn.execute(approvals.insert().values(**values, counted=counted, refusal=refusal)))
        append_audit(conn, attempt.approver, "approval.record", f"promotion:{promotion_id}",
                     {"seq": seq, "approver": attempt.approver, "decision": attempt.decision,
                      "comment": attempt.comment or "", "content_hash": attempt.content_hash, "counted": counted,
                      "refusal": refusal, "evidence_id": evidence_id,
                      **({"plan_hash": attempt.plan_hash} if attempt.plan_hash else {})}, now)
        return seq

    @staticmethod
    def _counted(conn: sa.Connection, promotion_id: str, approver: str, decision: str) -> int | None:
        return conn.execute(sa.select(A.seq).where(A.promotion_id == promotion_id, A.approver == approver,
                                                   A.decision == decision, A.counted.is_(True))
                            ).scalar_one_or_none()

    def approvals_for(self, promotion_id: str) -> list[Approval]:
        """Every attempt for the promotion, counted or refused, in the order they were recorded."""
        with self._read() as conn:
            rows = conn.execute(sa.select(approvals).where(A.promotion_id == promotion_id).order_by(A.seq)).all()
        return [records.approval_from_row(r) for r in rows]

    # -- gate verdicts --------------------------------------------------------------------------

    def record_gate_verdicts(self, promotion_id: str, items: Iterable[tuple[GateVerdict, dict[str, Any]]], *,
                             actor: str = "system") -> None:
        """Record verdicts with the inputs they were decided from, all in one transaction (all or none)."""
        rows = _verdict_rows(promotion_id, items)
        now = self._clock()
        with self._write() as conn:
            _promotion_status(conn, promotion_id)
            _insert_verdicts(conn, promotion_id, rows, actor, now)

    def record_gate_decision(self, promotion_id: str, items: Iterable[tuple[GateVerdict, dict[str, Any]]],
                             decision: dict[str, Any], sealed: Iterable[EvidenceRecord], settle: Settlement, *,
                             actor: str = "stella") -> Promotion:
        """Record a promotion's gate decision once: verdicts, the decision, its signed evidence and the
        status it leads to, in ONE transaction, only while the promotion is `evaluating`.

        Raises GatesAlreadyDecided (and writes nothing) if the promotion has left `evaluating`: a
        re-run gates task, or two attempts racing, can never add a second decision.
        """
        rows = _verdict_rows(promotion_id, items)
        decision = to_jsonable(decision)
        assert_no_secrets(decision, "decision")
        now = self._clock()
        with self._write() as conn:
            row = _lock_promotion(conn, promotion_id)
            if row.status != PromotionStatus.EVALUATING:
                raise GatesAlreadyDecided(f"promotion {promotion_id} is {row.status}: its gates were decided "
                                          "already (gates are evaluated once, while it is evaluating)")
            _insert_verdicts(conn, promotion_id, rows, actor, now)
            conn.execute(promotions.update().where(P.id == promotion_id).values(decision=decision, updated_at=now))
            append_audit(conn, actor, "promotion.decision", f"promotion:{promotion_id}", {"decision": decision}, now)
            for record in sealed:
                self._append_evidence_in(conn, record, promotion_id, row.release_id, actor)
            self._transition_in(conn, promotion_id, row.status, settle.status, settle.actor, settle.detail, now)
            row = conn.execute(sa.select(promotions).where(P.id == promotion_id)).one()
        return records.promotion_from_row(row)

    def gate_verdicts_for(self, promotion_id: str) -> list[tuple[GateVerdict, dict[str, Any]]]:
        """(verdict, inputs) pairs in the order they were recorded."""
        with self._read() as conn:
            rows = conn.execute(sa.select(gate_verdicts).where(G.promotion_id == promotion_id)
                                .order_by(G.seq)).all()
        return [records.gate_verdict_from_row(r) for r in rows]

    # -- queries --------------------------------------------------------------------------------

    def promotions_with_status(self, status: PromotionStatus | str, app: str | None = None,
                               environment: str | None = None) -> list[Promotion]:
        """Promotions now in `status` (e.g. awaiting_approval), oldest request first."""
        query = sa.select(promotions).where(P.status == PromotionStatus(status).value)
        if app is not None:
            query = query.where(P.app == app)
        if environment is not None:
            query = query.where(P.environment == environment)
        with self._read() as conn:
            rows = conn.execute(query.order_by(P.requested_at, P.id)).all()
        return [records.promotion_from_row(r) for r in rows]

    def recent_promotions(self, limit: int = 50, app: str | None = None) -> list[Promotion]:
        """The latest promotions, newest request first (the promotion timeline)."""
        query = sa.select(promotions)
        if app is not None:
            query = query.where(P.app == app)
        with self._read() as conn:
            rows = conn.execute(query.order_by(P.requested_at.desc(), P.id.desc()).limit(limit)).all()
        return [records.promotion_from_row(r) for r in rows]
