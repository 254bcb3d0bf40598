"""Signed checkpoints of the audit chain: (event count, head hash), kept outside the database.

The chain itself cannot show events cut off its end: the shorter chain is still a valid chain.
A checkpoint signed at some moment and stored elsewhere (the evidence locker, a ticket, a mail)
can: the log must still contain the checkpoint's head event, at the checkpoint's position.

A checkpoint file is a DSSE envelope (as evidence is, so any DSSE verifier can check its signature)
over the RFC 8785 canonical JSON of {"_type", "events", "head", "last_seq", "at"}.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stella_operators.evidence.canonical import canonical_json, iso_utc
from stella_operators.evidence.envelope import pae
from stella_operators.evidence.keys import SigningKey, TrustedKeys, UnknownKeyId
from stella_operators.ledger.audit import GENESIS_HASH
from stella_operators.ledger.audit_verify import AuditRow, ChainProblem, ProblemKind

CHECKPOINT_PAYLOAD_TYPE = "application/vnd.stella-operators.audit-checkpoint+json"
CHECKPOINT_TYPE = "https://stella-operators.dev/audit-checkpoint/v0"


class CheckpointError(ValueError):
    """A checkpoint file that is malformed or whose signature does not verify against the trust store."""


@dataclass(frozen=True)
class Checkpoint:
    events: int
    head: str
    last_seq: int | None
    at: str
    key_id: str


def make_checkpoint(rows: Sequence[AuditRow], key: SigningKey, at: datetime) -> str:
    """The checkpoint file's text for the chain `rows` (in any order), signed by `key`."""
    ordered = sorted(rows, key=lambda r: r.seq)
    body = {"_type": CHECKPOINT_TYPE, "events": len(ordered), "head": ordered[-1].hash if ordered else GENESIS_HASH,
            "last_seq": ordered[-1].seq if ordered else None, "at": iso_utc(at)}
    payload = canonical_json(body)
    sig = key.sign(pae(CHECKPOINT_PAYLOAD_TYPE, payload))
    envelope = {"payloadType": CHECKPOINT_PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(sig).decode("ascii")}]}
    return canonical_json(envelope).decode("utf-8") + "\n"


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint field {name!r} must be a {kind.__name__}")
    return value


def read_checkpoint(text: str | bytes, trusted: TrustedKeys) -> Checkpoint:
    """The checkpoint in `text`, once its signature verifies with a trusted key; else CheckpointError."""
    try:
        env = json.loads(text)
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = env["signatures"]
        key_id, sig = sigs[0]["keyid"], base64.b64decode(sigs[0]["sig"], validate=True)
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
        raise CheckpointError(f"not a checkpoint file (DSSE envelope): {type(exc).__name__}: {exc}") from None
    if env.get("payloadType") != CHECKPOINT_PAYLOAD_TYPE:
        raise CheckpointError(f"payloadType is {env.get('payloadType')!r}, expected {CHECKPOINT_PAYLOAD_TYPE!r}")
    try:
        if not trusted.verify(key_id, pae(CHECKPOINT_PAYLOAD_TYPE, payload), sig):
            raise CheckpointError(f"checkpoint signature does not verify with key {key_id}")
    except UnknownKeyId:
        raise CheckpointError(f"checkpoint signed by untrusted key {key_id}: not in the trust store") from None
    body = json.loads(payload)
    if not isinstance(body, dict) or body.get("_type") != CHECKPOINT_TYPE:
        raise CheckpointError(f"payload is not a {CHECKPOINT_TYPE} checkpoint")
    last_seq = body.get("last_seq")
    if last_seq is not None and (not isinstance(last_seq, int) or isinstance(last_seq, bool)):
        raise CheckpointError("checkpoint field 'last_seq' must be an int or null")
    at = _field(body, "at", str)
    revocation = trusted.revocation(key_id)
    if revocation is not None:
        try:
            signed_at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise CheckpointError(f"checkpoint field 'at' is not an ISO 8601 time: {at!r}") from None
        if signed_at.tzinfo is None or revocation.covers(signed_at):
            raise CheckpointError(f"checkpoint of {at} signed by a revoked key: {revocation.sentence()}")
    return Checkpoint(_field(body, "events", int), _field(body, "head", str), last_seq, at, key_id)


def check_checkpoint(rows: Sequence[AuditRow], checkpoint: Checkpoint) -> list[ChainProblem]:
    """Problems showing the log lost what `checkpoint` saw: its head event is gone, or not where it was.

    Changes before the head are the chain walk's business (verify_audit_rows); this only answers
    "is everything the checkpoint vouched for still there".
    """
    ordered = sorted(rows, key=lambda r: r.seq)
    if checkpoint.events == 0:
        return []
    seen = f"the checkpoint of {checkpoint.at} (signed by {checkpoint.key_id}) saw {checkpoint.events} events"
    position = next((i for i, r in enumerate(ordered) if r.hash == checkpoint.head), None)
    if position is None:
        if len(ordered) < checkpoint.events:
            last = ordered[-1].seq if ordered else "none"
            return [ChainProblem(ProblemKind.CUT, checkpoint.last_seq or checkpoint.events,
                                 f"events were cut off the end: {seen} ending at event {checkpoint.last_seq} "
                                 f"(head {checkpoint.head[:12]}); the log has {len(ordered)}, the last is {last}")]
        return [ChainProblem(ProblemKind.CHANGED, checkpoint.last_seq or checkpoint.events,
                             f"{seen} with head {checkpoint.head[:12]} at event {checkpoint.last_seq}; "
                             f"no event has that hash any more (the log was rewritten)")]
    if position + 1 != checkpoint.events:
        return [ChainProblem(ProblemKind.REMOVED if position + 1 < checkpoint.events else ProblemKind.INSERTED,
                             ordered[position].seq,
                             f"{seen} up to its head event {ordered[position].seq}; the log now has "
                             f"{position + 1} up to it")]
    return []
