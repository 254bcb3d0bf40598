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
from stella_operators.evidence.trust import TrustStore, TrustStoreError, load_trust_store

__all__ = [
    "EvidenceRecord",
    "EvidenceSubject",
    "EvidenceType",
    "SigningKey",
    "TrustStore",
    "TrustStoreError",
    "TrustedKeys",
    "UnknownKeyId",
    "Verification",
    "assert_no_secrets",
    "canonical_json",
    "iso_utc",
    "load_or_create_dev_key",
    "load_trust_store",
    "seal_evidence",
    "sha256_hex",
    "to_jsonable",
    "verify_evidence",
]
