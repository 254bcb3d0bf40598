"""Key revocation in the domain: what a revoked key signed before its revocation time verifies,
what it signed at or after that time does not, and the reason names the revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stella_operators.evidence import SigningKey
from stella_operators.evidence.envelope import seal_evidence, verify_evidence
from stella_operators.evidence.keys import Revocation, TrustedKeys
from stella_operators.evidence.trust import TrustStoreError, load_trust_store
from stella_operators.ledger.audit_checkpoint import CheckpointError, make_checkpoint, read_checkpoint

T_REVOKED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SUBJECT = [("shop", "sha256:" + "1" * 64)]


def _trusted(key: SigningKey, *, revoked_at: datetime | None = None) -> TrustedKeys:
    keys = TrustedKeys()
    keys.add(key.public_pem())
    if revoked_at is not None:
        keys.revoke(Revocation(key.key_id, revoked_at, "laptop stolen"))
    return keys


def test_a_revoked_key_counts_only_for_what_it_signed_before_the_revocation():
    key = SigningKey.generate()
    trusted = _trusted(key, revoked_at=T_REVOKED)
    before = seal_evidence("approval", SUBJECT, {"approver": "bob"}, key, T_REVOKED - timedelta(seconds=1))
    at = seal_evidence("approval", SUBJECT, {"approver": "bob"}, key, T_REVOKED)
    assert verify_evidence(before, trusted).ok
    result = verify_evidence(at, trusted)
    assert not result.ok
    assert result.reason == (f"signed at 2026-11-01T12:00:00Z by a revoked key: key {key.key_id} was revoked at "
                             "2026-11-01T12:00:00+00:00 (laptop stolen)")


def test_the_earliest_revocation_of_a_key_wins():
    key = SigningKey.generate()
    trusted = _trusted(key, revoked_at=T_REVOKED)
    trusted.revoke(Revocation(key.key_id, T_REVOKED + timedelta(days=1), "later notice"))
    trusted.revoke(Revocation(key.key_id, T_REVOKED - timedelta(days=1), "compromise found in logs"))
    revocation = trusted.revocation(key.key_id)
    assert revocation is not None and revocation.reason == "compromise found in logs"


def test_a_checkpoint_signed_by_a_revoked_key_after_its_revocation_is_refused():
    key = SigningKey.generate()
    trusted = _trusted(key, revoked_at=T_REVOKED)
    assert read_checkpoint(make_checkpoint([], key, T_REVOKED - timedelta(hours=1)), trusted).events == 0
    with pytest.raises(CheckpointError, match="signed by a revoked key"):
        read_checkpoint(make_checkpoint([], key, T_REVOKED + timedelta(hours=1)), trusted)


@pytest.mark.parametrize("content, message", [
    ('{"key_id": "x"}', "must be a JSON list"),
    ('[{"key_id": "ed25519:0123456789abcdef", "revoked_at": "yesterday", "reason": "r"}]',
     "revocations.json[0].revoked_at: 'yesterday' is not an ISO 8601 time with a time zone"),
    ('[{"key_id": "nope", "revoked_at": "2026-11-01T12:00:00Z", "reason": "r"}]',
     "revocations.json[0].key_id: 'nope' is not a key id"),
    ('[{"key_id": "ed25519:0123456789abcdef", "revoked_at": "2026-11-01T12:00:00Z", "reason": " "}]',
     "revocations.json[0].reason: say why"),
    ('[{"key_id": "ed25519:0123456789abcdef", "revoked_at": "2026-11-01T12:00:00", "reason": "r"}]',
     "not an ISO 8601 time with a time zone"),
])
def test_a_broken_revocations_file_is_an_error_naming_the_entry_and_field(tmp_path, content, message):
    (tmp_path / "org.pub").write_bytes(SigningKey.generate().public_pem())
    (tmp_path / "revocations.json").write_text(content)
    with pytest.raises(TrustStoreError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_trust_store([tmp_path], source="test")
