#!/usr/bin/env python3
"""Verify an exported stella evidence record with securesystemslib, not with stella's own code.

    pip install securesystemslib==1.6.0
    stella evidence export sha256:... -o record.json
    python verify_independent.py record.json org.pub

`record.json` is what `stella evidence export` writes: a JSON object whose "envelope" is a DSSE
envelope over an in-toto Statement v1. `org.pub` is the Ed25519 public key (PEM) you trust. The key
id is derived from the key as stella does ("ed25519:" + first 16 hex of SHA-256 over the 32 raw
bytes), so an envelope naming another key fails. Exit 0 and one "ok" line when the signature
verifies; exit 1 and the reason otherwise. Imports nothing from stella_operators on purpose.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined,unused-ignore]  # not in its __all__

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"


def ssl_key(public_pem: bytes) -> SSlibKey:
    """The trusted PEM key as a securesystemslib key (raw Ed25519 bytes in hex)."""
    key = serialization.load_pem_public_key(public_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"the public key is {type(key).__name__}, not Ed25519")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keyid = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
    return SSlibKey(keyid, "ed25519", "ed25519", {"public": raw.hex()})


def verify(record: dict[str, Any], public_pem: bytes) -> dict[str, Any]:
    """The verified in-toto Statement; raises VerificationError or ValueError with the reason."""
    # from_dict consumes the dict it is given: hand it a copy.
    envelope = Envelope.from_dict(copy.deepcopy(record["envelope"]))
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise ValueError(f"payloadType is {envelope.payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}")
    envelope.verify([ssl_key(public_pem)], 1)  # signature over DSSE PAE(payloadType, payload)
    expected_id = "sha256:" + hashlib.sha256(envelope.payload).hexdigest()
    if record.get("id") != expected_id:
        raise ValueError(f"record id {record.get('id')!r} is not the payload's SHA-256 {expected_id}")
    statement: dict[str, Any] = json.loads(envelope.payload)
    if statement.get("_type") != STATEMENT_V1:
        raise ValueError(f"payload is not an in-toto Statement v1: _type {statement.get('_type')!r}")
    return statement


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: verify_independent.py RECORD.json PUBLIC_KEY.pem", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as fh:
        record = json.load(fh)
    with open(argv[1], "rb") as fh:
        public_pem = fh.read()
    try:
        statement = verify(record, public_pem)
    except (VerificationError, ValueError, TypeError, KeyError) as exc:
        print(f"INVALID: {argv[0]}: {type(exc).__name__}: {exc}")
        return 1
    subjects = ", ".join(f"{s['name']}@sha256:{s['digest']['sha256']}" for s in statement["subject"])
    print(f"ok: {argv[0]} {statement['predicateType']} subjects {subjects}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
