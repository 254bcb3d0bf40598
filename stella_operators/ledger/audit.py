"""The hash-chained audit log: each event's hash covers the previous event's hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from stella_operators.evidence.canonical import canonical_plain, iso_utc, sha256_hex, to_jsonable
from stella_operators.evidence.envelope import assert_no_secrets
from stella_operators.ledger.tables import audit_events, inserted_id

GENESIS_HASH = "0" * 64
AUDIT_LOCK = 0x5374656C6C61_02


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    previous_hash: str
    hash: str


def chain_hash(previous_hash: str, at: datetime, actor: str, action: str, subject: str,
               detail: dict[str, Any]) -> str:
    # detail is plain JSON already (to_jsonable on the way in, a JSON column on the way out)
    return sha256_hex(canonical_plain({"previous_hash": previous_hash, "at": iso_utc(at), "actor": actor,
                                      "action": action, "subject": subject, "detail": detail}))


def append_audit(conn: sa.Connection, actor: str, action: str, subject: str,
                 detail: dict[str, Any] | None = None, at: datetime | None = None) -> AuditEvent:
    """Append one event inside the caller's transaction (so it commits or rolls back with the change)."""
    if not actor:
        raise ValueError("an audit event needs an actor")
    detail = to_jsonable(detail or {})
    assert_no_secrets(detail, "detail")
    at = (at or datetime.now(UTC)).astimezone(UTC)
    if conn.dialect.name == "postgresql":
        # Serialise appenders so each reads the true tail (SQLite writers are already serialised).
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK})
    previous = conn.execute(
        sa.select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)).scalar_one_or_none()
    previous = previous or GENESIS_HASH
    digest = chain_hash(previous, at, actor, action, subject, detail)
    seq = inserted_id(conn.execute(audit_events.insert().values(
        at=at, actor=actor, action=action, subject=subject, detail=detail, previous_hash=previous,
        hash=digest)))
    return AuditEvent(seq, at, actor, action, subject, detail, previous, digest)


def _event(row: sa.Row[Any]) -> AuditEvent:
    return AuditEvent(row.seq, row.at, row.actor, row.action, row.subject, row.detail, row.previous_hash, row.hash)


def list_audit(conn: sa.Connection, subject: str | None = None) -> list[AuditEvent]:
    query = sa.select(audit_events).order_by(audit_events.c.seq)
    if subject is not None:
        query = query.where(audit_events.c.subject == subject)
    return [_event(r) for r in conn.execute(query)]


def verify_chain(conn: sa.Connection) -> tuple[bool, int | None]:
    """(True, None) if every event links to the one before and hashes to its stored hash,
    else (False, seq of the first event that does not).

    A deleted event shows as the next event failing to link; dropping events at the very end
    leaves no trace in the chain itself (anchor the head elsewhere to catch that).
    """
    previous = GENESIS_HASH
    for row in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)):
        if row.previous_hash != previous:
            return False, row.seq
        if chain_hash(row.previous_hash, row.at, row.actor, row.action, row.subject, row.detail) != row.hash:
            return False, row.seq
        previous = row.hash
    return True, None
