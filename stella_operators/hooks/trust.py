"""TrustStoreHook: the public keys evidence verification trusts, from the environment or an Airflow Connection."""

from __future__ import annotations

import json
import os

from airflow.sdk import BaseHook

from stella_operators.evidence.trust import (
    HOW_TO_CONFIGURE,
    TRUST_CONN_ID,
    TRUST_DIR_ENV,
    TrustStore,
    TrustStoreError,
    load_trust_store,
    parse_revocations,
)
from stella_operators.hooks.connections import connection_or_none


def default_trust_conn_id() -> str:
    return os.environ.get("STELLA_TRUST_CONN_ID", TRUST_CONN_ID)


class TrustStoreHook(BaseHook):
    """The trust store, looked up in this order (the first one configured is used, never a mix):

    1. ``STELLA_TRUST_DIR``: a directory of PEM public keys (``*.pub`` / ``*.pem``) or one PEM file;
    2. the Connection ``stella_trust`` (any type; works from a secrets backend): extra ``path``
       (directory or file) and/or ``public_keys`` (a PEM string or a list of them), and
       optionally ``revoked`` (a list of {key_id, revoked_at, reason}).

    Nothing configured raises ``TrustStoreError`` saying how to configure one. Keys registered in
    the ledger are never trusted from here.

    :param trust_conn_id: the Connection to read (default ``stella_trust`` or ``$STELLA_TRUST_CONN_ID``).
    """

    conn_name_attr = "trust_conn_id"
    default_conn_name = TRUST_CONN_ID
    hook_name = "Stella evidence trust store"

    def __init__(self, trust_conn_id: str | None = None):
        super().__init__()
        self.trust_conn_id = trust_conn_id or default_trust_conn_id()

    def get_conn(self) -> TrustStore:
        directory = os.environ.get(TRUST_DIR_ENV, "").strip()
        if directory:
            return load_trust_store([directory], source=f"{TRUST_DIR_ENV}={directory}")
        conn = connection_or_none(self.trust_conn_id)
        if conn is None:
            raise TrustStoreError(f"no trust store configured: {HOW_TO_CONFIGURE}")
        try:
            extra = json.loads(conn.extra) if conn.extra else {}
        except ValueError:
            raise TrustStoreError(f"connection {self.trust_conn_id!r}: extra is not JSON") from None
        path, pems = extra.get("path"), extra.get("public_keys") or []
        if isinstance(pems, str):
            pems = [pems]
        if not path and not pems:
            raise TrustStoreError(f"connection {self.trust_conn_id!r} names no trust store (extra 'path' or "
                                  f"'public_keys'): {HOW_TO_CONFIGURE}")
        revoked = parse_revocations(extra.get("revoked", []), f"connection {self.trust_conn_id!r} extra 'revoked'")
        return load_trust_store([path] if path else [], pems, source=f"connection {self.trust_conn_id!r}",
                                revoked=revoked)
