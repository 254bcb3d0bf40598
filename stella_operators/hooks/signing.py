"""SigningKeyHook: the evidence signing key, from an Airflow Connection or a development key file."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from stella_operators import settings
from stella_operators.evidence.trust import TrustStoreError
from stella_operators.hooks.connections import connection_or_none
from stella_operators.hooks.trust import TrustStoreHook

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey

log = logging.getLogger(__name__)


class SigningKeyHook(BaseHook):
    """Ed25519 key that signs evidence.

    :param signing_key_conn_id: Connection whose password holds the PEM private key (or whose
        extra ``key_file`` names a PEM file). When not defined, a development key is created
        under ``$STELLA_HOME/keys`` and a warning says so: fine for the demo, not for production.
    """

    conn_name_attr = "signing_key_conn_id"
    default_conn_name = settings.SIGNING_KEY_CONN_ID
    hook_name = "Stella evidence signing key"

    def __init__(self, signing_key_conn_id: str | None = None):
        super().__init__()
        self.signing_key_conn_id = signing_key_conn_id or settings.signing_key_conn_id()

    def get_conn(self) -> SigningKey:
        key = self._load()
        warn_if_untrusted(key)
        return key

    def _load(self) -> SigningKey:
        from stella_operators.evidence.keys import SigningKey, load_or_create_dev_key

        conn = connection_or_none(self.signing_key_conn_id)
        if conn is None:
            path = settings.dev_key_path()
            log.warning("Connection %r not defined: signing evidence with the development key %s",
                        self.signing_key_conn_id, path)
            return load_or_create_dev_key(path)
        key_file = conn.extra_dejson.get("key_file")
        if key_file:
            with open(key_file, "rb") as fh:
                return SigningKey.from_pem(fh.read())
        if not conn.password:
            raise ValueError(f"connection {self.signing_key_conn_id!r} has no password (PEM key) and no key_file")
        return SigningKey.from_pem(conn.password.encode())


def warn_if_untrusted(key: SigningKey) -> None:
    """Say so when evidence is about to be signed with a key that verification will not trust: it
    would be stored, but `stella evidence verify` would report every such record untrusted."""
    try:
        store = TrustStoreHook().get_conn()
    except TrustStoreError as exc:
        log.warning("evidence signed with %s cannot be verified until a trust store holds its public key: %s",
                    key.key_id, exc)
        return
    if key.key_id not in store:
        log.warning("evidence signed with %s will not verify: that key is not in the trust store (%s); add its "
                    "public key (`stella evidence public-key`) or sign with a trusted key", key.key_id, store.source)
