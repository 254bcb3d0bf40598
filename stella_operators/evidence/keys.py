"""Ed25519 signing keys, identified by key ids derived from the public key, and the set of keys we trust."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class UnknownKeyId(LookupError):
    """A signature names a key id that is not in the trusted set."""

    def __init__(self, key_id: str):
        super().__init__(f"unknown key id {key_id}")
        self.key_id = key_id


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """`ed25519:` + the first 16 hex digits of SHA-256 over the 32 raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def load_public_pem(public_pem: bytes | str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(_as_bytes(public_pem))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"only Ed25519 public keys are supported, got {type(key).__name__}")
    return key


class SigningKey:
    """An Ed25519 private key. `key_id` names it in signatures so verifiers can pick the public key."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.key_id = key_id_for(private_key.public_key())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | None = None) -> SigningKey:
        key = serialization.load_pem_private_key(_as_bytes(pem), password=password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"only Ed25519 private keys are supported, got {type(key).__name__}")
        return cls(key)

    def to_pem(self, password: bytes | None = None) -> bytes:
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:  # never the private bytes
        return f"SigningKey({self.key_id})"


def load_or_create_dev_key(path: str | os.PathLike[str]) -> SigningKey:
    """Load the PEM key at `path`, or create one there (mode 0600) if it does not exist.

    Creation is atomic (written to a temporary file, then hard-linked into place), so two
    processes racing here end up with the same key.
    """
    path = Path(path)
    if path.exists():
        return SigningKey.from_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mkstemp creates with 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.to_pem())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return SigningKey.from_pem(path.read_bytes())
    finally:
        os.unlink(tmp)
    return key


@dataclass(frozen=True)
class Revocation:
    """A key that must not be trusted for anything it signed at or after `revoked_at`."""

    key_id: str
    revoked_at: datetime  # timezone-aware
    reason: str

    def covers(self, signed_at: datetime) -> bool:
        return signed_at >= self.revoked_at

    def sentence(self) -> str:
        return f"key {self.key_id} was revoked at {self.revoked_at.isoformat()} ({self.reason})"


class TrustedKeys:
    """Public keys we accept signatures from, by key id (always recomputed from the key itself),
    and the revocations of some of them.

    Which keys to trust is the trust store's business (evidence/trust.py: files outside the ledger).
    A retired key (rotated out) simply stays trusted: what it signed keeps verifying. A revoked
    key stays known, so that what it signed before its revocation time still verifies, while
    anything it signed at or after that time is refused (`revocation()` tells verifiers).
    """

    def __init__(self) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked: dict[str, Revocation] = {}

    def revoke(self, revocation: Revocation) -> None:
        if revocation.revoked_at.tzinfo is None:
            raise ValueError(f"revocation of {revocation.key_id}: revoked_at needs a time zone")
        earlier = self._revoked.get(revocation.key_id)
        if earlier is None or revocation.revoked_at < earlier.revoked_at:
            self._revoked[revocation.key_id] = revocation  # the earliest revocation wins

    def revocation(self, key_id: str) -> Revocation | None:
        return self._revoked.get(key_id)

    def revocations(self) -> list[Revocation]:
        return [self._revoked[k] for k in sorted(self._revoked)]

    def add(self, public_pem: bytes | str, key_id: str | None = None) -> str:
        """Trust a public key; returns its key id. A given `key_id` must match the key's own id."""
        key = load_public_pem(public_pem)
        actual = key_id_for(key)
        if key_id is not None and key_id != actual:
            raise ValueError(f"key id {key_id} does not match the public key (its id is {actual})")
        self._keys[actual] = key
        return actual

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, key_id: str, data: bytes, sig: bytes) -> bool:
        """True if `sig` is a valid signature of `data` by `key_id`; raises UnknownKeyId if not trusted."""
        try:
            key = self._keys[key_id]
        except KeyError:
            raise UnknownKeyId(key_id) from None
        try:
            key.verify(sig, data)
        except InvalidSignature:
            return False
        return True
