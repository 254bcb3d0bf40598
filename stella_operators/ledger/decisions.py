"""Ledger methods for what decides a promotion: approvals and gate verdicts (deploy locks: locks.py).

A mixin that `Ledger` inherits (kept apart so store.py stays readable). Like every ledger mutation,
each method writes its audit event in the same transaction as the change.

Approvals and gate verdicts are append-only (the database refuses UPDATE and DELETE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from stella_operators.approvals.policy import DUPLICATE
from stella_operators.evidence.canonical import to_jsonable
from stella_operators.evidence.envelope import assert_no_secrets
from stella_operators.gates.contract import GateVerdict
from stella_operators.ledger import records
from stella_operators.ledger.audit import append_audit
from stella_operators.ledger.errors import LedgerError, NotFound
from stella_operators.ledger.records import APPROVAL_DECISIONS, Approval
from stella_operators.ledger.tables import approvals, evidence, gate_verdicts, promotions
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


class LedgerDecisions:
    """Approvals and gate verdicts. Needs `_write`, `_read` and `_clock` from `Ledger`."""

    _clock: Callable[[], datetime]
    _write: Callable[[], Any]
    _read: Callable[[], Any]

    # -- approvals ------------------------------------------------------------------------------

    def record_approval(self, promotion_id: str, approver: str, decision: str, comment: str, content_hash: str,
                        *, counted: bool, refusal: str | None = None,
                        evidence_id: str | None = None) -> Approval:
        """Record one approval attempt, counted or refused (decide which with approvals.decide_approval_attempt).

        `counted` holds exactly when `refusal` is None. A counted attempt by someone who already has a
        counted one with the same decision is stored as not counted with refusal `approval.duplicate`
        (also when two requests race: the database keeps one counted per person and decision); the
        returned Approval says what was stored. `evidence_id`, if given, must already be in the ledger.
        """
        if decision not in APPROVAL_DECISIONS:
            raise LedgerError(f"an approval decision is 'approve' or 'reject', not {decision!r}")
        if not approver:
            raise LedgerError("an approval needs an approver")
        if not content_hash:
            raise LedgerError("an approval binds to a release content hash; none was given")
        if counted == (refusal is not None):
            raise LedgerError("an approval attempt either counts (no refusal) or is refused (with a reason code)"
                              f"; got counted={counted!r} and refusal={refusal!r}")
        now = self._clock()
        with self._write() as conn:
            _promotion_status(conn, promotion_id)
            if evidence_id is not None and conn.execute(
                    sa.select(evidence.c.id).where(evidence.c.id == evidence_id)).one_or_none() is None:
                raise NotFound(f"no evidence with id {evidence_id!r}; append the approval's evidence first")
            values = {"promotion_id": promotion_id, "approver": approver, "decision": decision,
                      "comment": comment or "", "content_hash": content_hash, "at": now, "evidence_id": evidence_id}
            seq = None
            if counted:
                try:
                    with conn.begin_nested():
                        seq = conn.execute(approvals.insert().values(**values, counted=True, refusal=None)
                                           ).inserted_primary_key[0]
                except IntegrityError:
                    # Only the one-counted-per-person index can refuse it here (the rest was checked above).
                    if self._counted(conn, promotion_id, approver, decision) is None:
                        raise
                    counted, refusal = False, DUPLICATE
            if seq is None:
                seq = conn.execute(approvals.insert().values(**values, counted=counted, refusal=refusal)
                                   ).inserted_primary_key[0]
            append_audit(conn, approver, "approval.record", f"promotion:{promotion_id}",
                         {"seq": seq, "approver": approver, "decision": decision, "comment": comment or "",
                          "content_hash": content_hash, "counted": counted, "refusal": refusal,
                          "evidence_id": evidence_id}, now)
            row = conn.execute(sa.select(approvals).where(A.seq == seq)).one()
        return records.approval_from_row(row)

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
        now = self._clock()
        with self._write() as conn:
            _promotion_status(conn, promotion_id)
            for values in rows:
                seq = conn.execute(gate_verdicts.insert().values(**values)).inserted_primary_key[0]
                append_audit(conn, actor, "gate.verdict", f"promotion:{promotion_id}",
                             {"seq": seq, "gate_type": values["gate_type"], "gate_name": values["gate_name"],
                              "verdict": values["verdict"], "reasons": values["reasons"],
                              "inputs_hash": values["inputs_hash"], "evaluated_at": values["evaluated_at"]}, now)

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
