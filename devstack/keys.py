"""The evidence signing key of a local stack and its trust root: a key pair under a state folder.

`evidence_key_env(state)` creates (once; later calls reuse it) `state/keys/evidence-signing.pem`
(mode 0600) and `state/trust/evidence-signing.pub`, and returns the variables that make every
component sign with that key and verify against that public key only:
AIRFLOW_CONN_STELLA_SIGNING_KEY (extra `key_file`) and STELLA_TRUST_DIR.
"""

from __future__ import annotations

import json
from pathlib import Path

from stella_operators.evidence.keys import load_or_create_dev_key

SIGNING_KEY_FILE = "keys/evidence-signing.pem"
TRUST_DIR = "trust"


def evidence_key_env(state: Path) -> dict[str, str]:
    state = Path(state).resolve()
    key = load_or_create_dev_key(state / SIGNING_KEY_FILE)
    trust = state / TRUST_DIR
    trust.mkdir(parents=True, exist_ok=True)
    public = trust / "evidence-signing.pub"
    if not public.exists() or public.read_bytes() != key.public_pem():
        public.write_bytes(key.public_pem())
    return {
        "AIRFLOW_CONN_STELLA_SIGNING_KEY": json.dumps(
            {"conn_type": "generic", "extra": {"key_file": str(state / SIGNING_KEY_FILE)}}),
        "STELLA_TRUST_DIR": str(trust),
    }
