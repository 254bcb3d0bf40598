"""Seal a decision as signed evidence about a release's digests and append it to the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stella_operators.release.model import Release

if TYPE_CHECKING:
    from stella_operators.evidence.envelope import EvidenceRecord
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import EvidenceBook


def record_evidence(ledger: EvidenceBook, key: SigningKey, evidence_type: str, release: Release,
                    content: dict[str, Any], *, promotion_id: str | None = None,
                    now: datetime | None = None) -> EvidenceRecord:
    """Sign `content` (what/where/who/why/how/when) with the release digests as subjects; store it."""
    from stella_operators.evidence.envelope import assert_no_secrets, seal_evidence

    assert_no_secrets(content)
    ledger.register_key(key.key_id, key.public_pem())
    subjects = [(c.repository, c.digest) for c in release.components]
    body = {"app": release.app, "release": {"id": release.id, "name": release.name,
                                            "content_hash": release.content_hash}, **content}
    record = seal_evidence(evidence_type, subjects, body, key, now or datetime.now(UTC))
    ledger.append_evidence(record, promotion_id=promotion_id, release_id=release.id)
    return record


def seal_release_evidence(key: SigningKey, evidence_type: str, release: Release, content: dict[str, Any], *,
                          now: datetime | None = None) -> EvidenceRecord:
    """Sign `content` like `record_evidence`, without storing it: for callers that store it in the same
    transaction as the decision it seals (approvals: no evidence for an attempt that did not count)."""
    from stella_operators.evidence.envelope import seal_evidence

    subjects = [(c.repository, c.digest) for c in release.components]
    body = {"app": release.app, "release": {"id": release.id, "name": release.name,
                                            "content_hash": release.content_hash}, **content}
    return seal_evidence(evidence_type, subjects, body, key, now or datetime.now(UTC))
