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
(Rotation and revocation metadata, e.g. a revocation time per key, would be added per key here.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stella_operators.evidence.keys import TrustedKeys

TRUST_DIR_ENV = "STELLA_TRUST_DIR"
TRUST_CONN_ID = "stella_trust"
KEY_SUFFIXES = (".pub", ".pem")

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


def _add(trusted: TrustedKeys, text: str, where: str) -> None:
    for block in pem_blocks(text, where):
        try:
            trusted.add(block)
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


def load_trust_store(paths: Iterable[str | os.PathLike[str]] = (), pems: Iterable[str] = (), *,
                     source: str) -> TrustStore:
    """Trusted keys from files / directories and PEM texts; an empty result is an error.

    :param source: how the store was configured, e.g. ``STELLA_TRUST_DIR=/etc/stella/trust``.
    """
    trusted = TrustedKeys()
    for path in paths:
        files = key_files(path)
        for f in files:
            try:
                text = f.read_text("ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise TrustStoreError(f"{f}: cannot read ({exc})") from None
            _add(trusted, text, str(f))
    for i, pem in enumerate(pems):
        _add(trusted, pem, f"{source} public_keys[{i}]")
    if not len(trusted):
        raise TrustStoreError(f"trust store {source} holds no public key; {HOW_TO_CONFIGURE}")
    return TrustStore(keys=trusted, source=source)
