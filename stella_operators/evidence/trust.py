"""The trust store: the public keys evidence is verified against, kept outside the ledger.

The ledger stores every key that signed something (so that it can check records before storing
them), but a key being in the ledger proves nothing: whoever can run a task or the CLI with a key
of their own gets it registered. Verification therefore trusts only keys the operator put in a
trust store: PEM public keys in files (a directory, a file) or as text (an Airflow Connection's
extra, a secrets backend). Where the store comes from is the hook's business (hooks/trust.py);
this module is plain Python.

Layout of a trust directory: every `*.pub` / `*.pem` file holds one or more PEM public keys
(`-----BEGIN PUBLIC KEY-----`); key ids are computed from the keys, so file names are free.
A private key in the store is refused: a trust store is handed around, a private key must not be.

Rotation: a new key gets a new id and its public key joins the store; the retired key's public
key stays, so everything it signed keeps verifying. Revocation: `revocations.json` in the trust
directory (or the Connection extra `revoked`) lists `{"key_id", "revoked_at", "reason"}`; what a
revoked key signed at or after its revocation time fails verification, naming the revocation.
`stella keys list | rotate | revoke` maintain a trust directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stella_operators.evidence.keys import Revocation, TrustedKeys

TRUST_DIR_ENV = "STELLA_TRUST_DIR"
TRUST_CONN_ID = "stella_trust"
KEY_SUFFIXES = (".pub", ".pem")
REVOCATIONS_FILE = "revocations.json"
KEY_ID_RE = re.compile(r"^ed25519:[0-9a-f]{16}$")

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)

HOW_TO_CONFIGURE = (
    "evidence is verified only against public keys you trust, never against keys found in the ledger. "
    f"Configure a trust store: set {TRUST_DIR_ENV} to a directory of PEM public keys (*.pub or *.pem), "
    f"or define the Airflow Connection {TRUST_CONN_ID!r} with extra "
    '{"path": "/etc/stella/trust"} or {"public_keys": ["-----BEGIN PUBLIC KEY-----..."]}, '
    "or pass --trust PATH. `stella evidence public-key` prints the public key of the configured signing key"
)


class TrustStoreError(ValueError):
    """No trust store is configured, or the configured one cannot be read or holds no key."""


@dataclass(frozen=True)
class TrustStore:
    """Trusted public keys and where they came from (named in every verification message)."""

    keys: TrustedKeys
    source: str
    origins: dict[str, str] = field(default_factory=dict)  # key id -> the file (or entry) it came from

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys


def pem_blocks(text: str, where: str) -> list[str]:
    """The PEM public keys in `text` (one or more blocks); a private key or no key is an error."""
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
    if any("PRIVATE KEY" in b.split("\n", 1)[0] for b in blocks):
        raise TrustStoreError(f"{where}: holds a private key; a trust store holds public keys only "
                              "(`stella evidence public-key` prints the public half)")
    keys = [b for b in blocks if b.startswith("-----BEGIN PUBLIC KEY-----")]
    if not keys:
        raise TrustStoreError(f"{where}: no PEM public key (-----BEGIN PUBLIC KEY-----) found")
    return keys


def _add(trusted: TrustedKeys, text: str, where: str, origins: dict[str, str]) -> None:
    for block in pem_blocks(text, where):
        try:
            origins.setdefault(trusted.add(block), where)
        except ValueError as exc:
            raise TrustStoreError(f"{where}: {exc}") from None


def key_files(path: str | os.PathLike[str]) -> list[Path]:
    """The key files of a trust path: the file itself, or a directory's `*.pub` / `*.pem` files."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir()
                      if f.suffix in KEY_SUFFIXES and f.is_file() and not f.name.startswith("."))
    if p.is_file():
        return [p]
    raise TrustStoreError(f"trust store {p} does not exist")


def parse_revocations(data: Any, where: str) -> list[Revocation]:
    """Revocation entries (a list of {key_id, revoked_at, reason}); errors name the entry and field."""
    if not isinstance(data, list):
        raise TrustStoreError(f"{where}: must be a JSON list of {{key_id, revoked_at, reason}} entries")
    out = []
    for i, entry in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"key_id", "revoked_at", "reason"}:
            raise TrustStoreError(f"{at}: needs exactly the fields key_id, revoked_at, reason")
        if not isinstance(entry["key_id"], str) or not KEY_ID_RE.match(entry["key_id"]):
            raise TrustStoreError(f"{at}.key_id: {entry['key_id']!r} is not a key id like ed25519:0123456789abcdef")
        try:
            when = datetime.fromisoformat(str(entry["revoked_at"]).replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise TrustStoreError(f"{at}.revoked_at: {entry['revoked_at']!r} is not an ISO 8601 time with a "
                                  "time zone, e.g. 2026-11-30T12:00:00Z")
        if not isinstance(entry["reason"], str) or not entry["reason"].strip():
            raise TrustStoreError(f"{at}.reason: say why the key was revoked")
        out.append(Revocation(entry["key_id"], when, entry["reason"].strip()))
    return out


def read_revocations(directory: Path) -> list[Revocation]:
    path = directory / REVOCATIONS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrustStoreError(f"{path}: cannot read revocations ({exc})") from None
    return parse_revocations(data, str(path))


def load_trust_store(paths: Iterable[str | os.PathLike[str]] = (), pems: Iterable[str] = (), *,
                     source: str, revoked: Iterable[Revocation] = ()) -> TrustStore:
    """Trusted keys from files / directories and PEM texts, with the revocations found beside them
    (a directory's revocations.json) or given; an empty result is an error.

    :param source: how the store was configured, e.g. ``STELLA_TRUST_DIR=/etc/stella/trust``.
    """
    trusted = TrustedKeys()
    origins: dict[str, str] = {}
    for revocation in revoked:
        trusted.revoke(revocation)
    for path in paths:
        if Path(path).is_dir():
            for revocation in read_revocations(Path(path)):
                trusted.revoke(revocation)
        files = key_files(path)
        for f in files:
            try:
                text = f.read_text("ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise TrustStoreError(f"{f}: cannot read ({exc})") from None
            _add(trusted, text, str(f), origins)
    for i, pem in enumerate(pems):
        _add(trusted, pem, f"{source} public_keys[{i}]", origins)
    if not len(trusted):
        raise TrustStoreError(f"trust store {source} holds no public key; {HOW_TO_CONFIGURE}")
    return TrustStore(keys=trusted, source=source, origins=origins)
