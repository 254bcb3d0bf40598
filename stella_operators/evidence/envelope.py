"""Evidence as DSSE envelopes over in-toto Statements: seal, serialise, verify offline.

The signed payload is the RFC 8785 canonical JSON of an in-toto Statement v1 whose subjects
are the image digests, so any DSSE / in-toto verifier can check it; the evidence id is the
SHA-256 of those payload bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from stella_operators.evidence.canonical import (
    canonical_json,
    canonical_plain,
    is_plain,
    iso_utc,
    sha256_hex,
    to_jsonable,
)
from stella_operators.evidence.keys import SigningKey, TrustedKeys, UnknownKeyId

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE_PREFIX = "https://stella-operators.dev/evidence/"
PREDICATE_TYPE_SUFFIX = "/v0"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "privatekey", "apikey", "credential")


class EvidenceType(StrEnum):
    RELEASE = "release"
    GATE_DECISION = "gate_decision"
    APPROVAL = "approval"
    DEPLOYMENT = "deployment"
    ROLLBACK = "rollback"
    CANARY = "canary"
    OVERRIDE = "override"
    PROMOTION = "promotion"


def predicate_type(type: EvidenceType | str) -> str:
    return f"{PREDICATE_TYPE_PREFIX}{EvidenceType(type).value}{PREDICATE_TYPE_SUFFIX}"


class EvidenceSubject(BaseModel):
    """What the evidence is about: an image (`registry/repo`) at a digest (`sha256:<hex>`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    digest: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v:
            raise ValueError("subject name must not be empty")
        return v

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not _DIGEST_RE.match(v):
            raise ValueError(f"subject digest must be 'sha256:' + 64 lowercase hex, got {v!r}")
        return v


class EvidenceRecord(BaseModel):
    """One sealed piece of evidence: the DSSE envelope plus the fields people look it up by.

    Everything outside `envelope` is a copy of what the signed statement says; verification
    checks that the copies agree with the statement.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    type: EvidenceType
    subjects: list[EvidenceSubject]
    envelope: dict[str, Any]
    key_id: str
    created_at: datetime

    def payload_bytes(self) -> bytes:
        return base64.b64decode(self.envelope["payload"], validate=True)

    def statement(self) -> dict[str, Any]:
        statement: dict[str, Any] = json.loads(self.payload_bytes())
        return statement

    @property
    def content(self) -> dict[str, Any]:
        """The predicate's content as signed (what/where/who/why/how/when)."""
        content: dict[str, Any] = self.statement()["predicate"]["content"]
        return content

    def to_file_json(self) -> str:
        """Canonical JSON text (plus a newline): byte-for-byte reproducible, so any edit shows."""
        return canonical_json(self.model_dump(mode="json")).decode("utf-8") + "\n"

    @classmethod
    def from_file_json(cls, text: str | bytes) -> EvidenceRecord:
        """Parse a file written by `to_file_json` (no signature check: see `verify_evidence`)."""
        return cls.model_validate(json.loads(text))


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str
    key_id: str | None = None
    statement: dict[str, Any] | None = None
    evidence_id: str | None = None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: the bytes that are actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@lru_cache(maxsize=4096)
def _named_like_a_secret(name: str) -> bool:
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    return any(word in squashed for word in _SECRET_WORDS)


def assert_no_secrets(content: Any, path: str = "content") -> None:
    """Refuse content with a field named like a secret, or a private key in a value.

    Evidence is kept forever and handed to auditors: a secret that got in can never be removed.
    """
    if isinstance(content, dict):
        for key, value in content.items():
            name = str(key)
            field_path = f"{path}.{name}"
            if _named_like_a_secret(name):
                raise ValueError(f"evidence must not contain secrets: field {field_path!r} is named like one")
            assert_no_secrets(value, field_path)
    elif isinstance(content, (list, tuple)):
        for i, value in enumerate(content):
            assert_no_secrets(value, f"{path}[{i}]")
    elif isinstance(content, str) and "PRIVATE KEY-----" in content:
        raise ValueError(f"evidence must not contain secrets: field {path!r} holds a private key")


def _subjects(subjects: list[tuple[str, str]]) -> list[EvidenceSubject]:
    parsed = {EvidenceSubject(name=name, digest=digest) for name, digest in subjects}
    return sorted(parsed, key=lambda s: (s.name, s.digest))


def build_statement(type: EvidenceType | str, subjects: list[EvidenceSubject], content: dict[str, Any],
                    created_at: datetime, *, content_is_plain: bool = False) -> dict[str, Any]:
    """The in-toto Statement, as plain JSON. `content_is_plain`: the caller saw `is_plain(content)`."""
    etype = EvidenceType(type)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.name, "digest": {"sha256": s.digest.removeprefix("sha256:")}} for s in subjects],
        "predicateType": predicate_type(etype),
        "predicate": {"type": etype.value, "content": content if content_is_plain else to_jsonable(content),
                      "created_at": iso_utc(created_at)},
    }


def seal_evidence(type: EvidenceType | str, subjects: list[tuple[str, str]], content: dict[str, Any],
                  key: SigningKey, created_at: datetime) -> EvidenceRecord:
    """Sign `content` about `subjects` ((name, "sha256:...") pairs) as evidence of `type`.

    Deterministic: the same inputs and key give the same id (Ed25519 signatures are deterministic too).
    """
    etype = EvidenceType(type)
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    created_at = created_at.astimezone(UTC)
    if not isinstance(content, dict):
        raise TypeError("evidence content must be a dict")
    assert_no_secrets(content)
    subs = _subjects(subjects)
    plain = is_plain(content)  # then the whole statement is (its own keys are ASCII, its values strings)
    payload = canonical_plain(build_statement(etype, subs, content, created_at, content_is_plain=plain),
                              checked=plain)
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": _b64(payload),
                "signatures": [{"keyid": key.key_id, "sig": _b64(sig)}]}
    return EvidenceRecord(id="sha256:" + sha256_hex(payload), type=etype, subjects=subs, envelope=envelope,
                          key_id=key.key_id, created_at=created_at)


class _Bad(Exception):
    """Internal: a verification failure with its reason."""


def _strict_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"envelope {what} is not a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"envelope {what} is not valid base64") from None
    if _b64(data) != value:  # unused bits or padding differ: same bytes, different text
        raise _Bad(f"envelope {what} is not canonical base64")
    return data


def _parse_input(obj: EvidenceRecord | dict[str, Any] | str | bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(envelope, record dict or None) from whatever the caller holds."""
    if isinstance(obj, EvidenceRecord):
        return obj.envelope, obj.model_dump(mode="json")
    if isinstance(obj, (str, bytes)):
        try:
            text = obj.decode("utf-8") if isinstance(obj, bytes) else obj
            data = json.loads(text)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise _Bad(f"not valid JSON: {exc}") from None
        if isinstance(data, dict) and "envelope" in data:
            # Record files are written canonically, so any other spelling of the same JSON is an edit.
            body = text[:-1] if text.endswith("\n") else text
            if body != canonical_json(data).decode("utf-8"):
                raise _Bad("evidence file is not in canonical form (it was edited)")
        obj = data
    if not isinstance(obj, dict):
        raise _Bad("evidence must be a JSON object")
    if "envelope" in obj:
        if not isinstance(obj["envelope"], dict):
            raise _Bad("record envelope is not an object")
        return obj["envelope"], obj
    return obj, None


def _check_envelope(env: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    extra = set(env) - {"payloadType", "payload", "signatures"}
    if extra:
        raise _Bad(f"envelope has unexpected fields {sorted(extra)}")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise _Bad(f"envelope payloadType is {env.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}")
    payload = _strict_b64(env.get("payload"), "payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise _Bad("envelope has no signatures")
    out = []
    for i, s in enumerate(sigs):
        if not isinstance(s, dict) or set(s) != {"keyid", "sig"} or not isinstance(s["keyid"], str):
            raise _Bad(f"envelope signature {i} must have exactly 'keyid' and 'sig'")
        out.append((s["keyid"], _strict_b64(s["sig"], f"signature {i}")))
    return payload, out


def _check_statement(st: Any) -> dict[str, Any]:
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE:
        raise _Bad(f"payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    pred = st.get("predicate")
    if not isinstance(pred, dict) or set(pred) != {"type", "content", "created_at"}:
        raise _Bad("statement predicate must have exactly type, content, created_at")
    try:
        etype = EvidenceType(pred["type"])
    except ValueError:
        raise _Bad(f"unknown evidence type {pred['type']!r}") from None
    if st.get("predicateType") != predicate_type(etype):
        raise _Bad(f"predicateType {st.get('predicateType')!r} does not match evidence type {etype}")
    subjects = st.get("subject")
    if not isinstance(subjects, list) or not all(
            isinstance(s, dict) and isinstance(s.get("digest"), dict) and "sha256" in s["digest"] for s in subjects):
        raise _Bad("statement subjects must each have a sha256 digest")
    return st


def _check_record(rec: dict[str, Any], key_id: str, st: dict[str, Any]) -> None:
    try:
        record = EvidenceRecord.model_validate(rec)
    except ValidationError as exc:
        raise _Bad(f"record is malformed: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from None
    if canonical_plain(record.model_dump(mode="json")) != canonical_plain(rec):
        raise _Bad("record fields are not in canonical form (it was edited)")
    pred = st["predicate"]
    signed_subjects = [(s["name"], "sha256:" + s["digest"]["sha256"]) for s in st["subject"]]
    if [(s.name, s.digest) for s in record.subjects] != signed_subjects:
        raise _Bad("record field 'subjects' does not match the signed statement")
    if record.type.value != pred["type"]:
        raise _Bad("record field 'type' does not match the signed statement")
    if record.key_id != key_id:
        raise _Bad("record field 'key_id' does not match the envelope signature")
    if iso_utc(record.created_at) != pred["created_at"]:
        raise _Bad("record field 'created_at' does not match the signed statement")


def _check_not_revoked(trusted: TrustedKeys, key_ids: list[str], statement: dict[str, Any]) -> None:
    """A signature by a revoked key counts only for statements signed before the revocation time.
    The time is the statement's own signed `created_at`: a thief of the key could backdate a
    statement, which the audit chain's signed checkpoints (made before the revocation) expose."""
    try:
        signed_at = datetime.fromisoformat(str(statement["predicate"]["created_at"]).replace("Z", "+00:00"))
    except ValueError:
        raise _Bad("statement created_at is not an ISO 8601 time") from None
    if signed_at.tzinfo is None:
        raise _Bad("statement created_at has no time zone")
    for kid in key_ids:
        revocation = trusted.revocation(kid)
        if revocation is not None and revocation.covers(signed_at):
            raise _Bad(f"signed at {iso_utc(signed_at)} by a revoked key: {revocation.sentence()}")


def verify_evidence(evidence: EvidenceRecord | dict[str, Any] | str | bytes, trusted: TrustedKeys) -> Verification:
    """Check evidence offline: a record, a record file's text, or a bare DSSE envelope (dict or JSON).

    Order follows DSSE: structure, content hash, signatures, and only then is the payload parsed.
    """
    key_id = evidence_id = statement = None
    try:
        env, rec = _parse_input(evidence)
        payload, sigs = _check_envelope(env)
        evidence_id = "sha256:" + sha256_hex(payload)
        if rec is not None and rec.get("id") != evidence_id:
            raise _Bad(f"content hash mismatch: record id {rec.get('id')!r}, payload hashes to {evidence_id}")
        key_id = sigs[0][0]
        signed = pae(PAYLOAD_TYPE, payload)
        for kid, sig in sigs:
            try:
                if not trusted.verify(kid, signed, sig):
                    raise _Bad(f"signature does not verify with key {kid}")
            except UnknownKeyId as exc:
                raise _Bad(str(exc)) from None
        try:
            parsed = json.loads(payload.decode("utf-8"))
        except ValueError:
            raise _Bad("payload is not valid UTF-8 JSON") from None
        if canonical_plain(parsed) != payload:
            raise _Bad("payload is not canonical JSON")
        statement = _check_statement(parsed)
        if rec is not None:
            _check_record(rec, key_id, statement)
        _check_not_revoked(trusted, [kid for kid, _ in sigs], statement)
    except _Bad as bad:
        return Verification(False, str(bad), key_id, statement, evidence_id)
    return Verification(True, "ok", key_id, statement, evidence_id)
