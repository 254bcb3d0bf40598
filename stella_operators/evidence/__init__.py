"""Evidence: canonical JSON, Ed25519 keys, and signed DSSE / in-toto envelopes verifiable offline."""

from stella_operators.evidence.canonical import canonical_json, iso_utc, sha256_hex, to_jsonable
from stella_operators.evidence.envelope import (
    EvidenceRecord,
    EvidenceSubject,
    EvidenceType,
    Verification,
    assert_no_secrets,
    seal_evidence,
    verify_evidence,
)
from stella_operators.evidence.keys import SigningKey, TrustedKeys, UnknownKeyId, load_or_create_dev_key

__all__ = [
    "EvidenceRecord",
    "EvidenceSubject",
    "EvidenceType",
    "SigningKey",
    "TrustedKeys",
    "UnknownKeyId",
    "Verification",
    "assert_no_secrets",
    "canonical_json",
    "iso_utc",
    "load_or_create_dev_key",
    "seal_evidence",
    "sha256_hex",
    "to_jsonable",
    "verify_evidence",
]
