"""Cosign-compatible signature and DSSE attestation checks, pure functions over recorded bytes.

Key-based cosign signatures: the `.sig` artifact's layers are "simple signing" payloads
(`{"critical": {"image": {"docker-manifest-digest": ...}, ...}}`) with the base64 signature in the
layer annotation `dev.cosignproject.cosign/signature`; ECDSA P-256 / RSA sign the payload with
SHA-256, Ed25519 signs it directly. Attestations: each layer is a DSSE envelope over an in-toto
Statement, signed over DSSE's PAE. Keys are identified by `sha256:` + the first 16 hex digits of
the SHA-256 of their DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from stella_operators.evidence.envelope import pae

COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def load_key(pem: str) -> tuple[str, PublicKey]:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__} (ECDSA, Ed25519 or RSA)")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16], key


def _verifies(key: PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def signer(keys: dict[str, PublicKey], sig: bytes, data: bytes) -> str | None:
    """The id of the trusted key that made `sig` over `data`, if any."""
    return next((kid for kid, key in keys.items() if _verifies(key, sig, data)), None)


def check_signature(keys: dict[str, PublicKey], entry: dict[str, Any], digest: str) -> tuple[bool, str]:
    """(ok, reason code or key id) for one recorded cosign signature layer."""
    try:
        payload = base64.b64decode(entry["payload"], validate=True)
        sig = base64.b64decode(entry["signature"], validate=True)
    except (KeyError, ValueError):
        return False, "provenance.malformed"
    kid = signer(keys, sig, payload)
    if kid is None:
        return False, "provenance.untrusted_signature"
    try:
        signed_digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        return False, "provenance.malformed"
    if signed_digest != digest:
        return False, "provenance.wrong_digest"
    return True, kid


def check_attestation(keys: dict[str, PublicKey], envelope: dict[str, Any], digest: str,
                      predicate_types: list[str]) -> tuple[bool, str]:
    """(ok, reason code or key id) for one recorded DSSE attestation."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        payload_type = envelope["payloadType"]
        sigs = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (KeyError, ValueError, TypeError):
        return False, "provenance.malformed"
    if payload_type != IN_TOTO:
        return False, "provenance.malformed"
    kid = next((k for s in sigs if (k := signer(keys, s, pae(payload_type, payload)))), None)
    if kid is None:
        return False, "provenance.untrusted_signature"
    try:
        statement = json.loads(payload)
        subjects = {"sha256:" + s["digest"]["sha256"] for s in statement["subject"]}
    except (ValueError, KeyError, TypeError):
        return False, "provenance.malformed"
    if digest not in subjects:
        return False, "provenance.wrong_digest"
    if predicate_types and statement.get("predicateType") not in predicate_types:
        return False, "provenance.wrong_predicate"
    return True, kid
