"""LedgerHook: opens the ledger database named by an Airflow Connection (SQLite file by default)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from sqlalchemy.engine import URL

from stella_operators import settings
from stella_operators.hooks.connections import connection_or_none

if TYPE_CHECKING:
    from stella_operators.ledger import Ledger

log = logging.getLogger(__name__)


def ledger_url_from_connection(conn: Any) -> str:
    """SQLAlchemy URL for a Connection of type sqlite (host = file path) or postgres."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    ctype = (conn.conn_type or "").lower()
    if ctype == "sqlite":
        return f"sqlite:///{conn.host}"
    if ctype in ("postgres", "postgresql"):
        return URL.create("postgresql+psycopg2", username=conn.login or None, password=conn.password or None,
                          host=conn.host or None, port=conn.port or None,
                          database=conn.schema or None).render_as_string(hide_password=False)
    raise ValueError(f"connection {conn.conn_id!r}: ledger needs conn_type sqlite or postgres, not {ctype!r}")


class LedgerHook(BaseHook):
    """The ledger: the system of record, apart from Airflow's metadata DB (which `db clean` purges).

    :param ledger_conn_id: Airflow Connection of type ``sqlite`` (host = file path) or ``postgres``.
        When it is not defined, a SQLite file under ``$STELLA_HOME`` is used.
    """

    conn_name_attr = "ledger_conn_id"
    default_conn_name = settings.LEDGER_CONN_ID
    hook_name = "Stella ledger"

    def __init__(self, ledger_conn_id: str | None = None):
        super().__init__()
        self.ledger_conn_id = ledger_conn_id or settings.ledger_conn_id()

    def url(self) -> str:
        conn = connection_or_none(self.ledger_conn_id)
        if conn is None:
            settings.stella_home().mkdir(parents=True, exist_ok=True)
            return settings.default_ledger_url()
        return ledger_url_from_connection(conn)

    def get_conn(self) -> Ledger:
        return _open_ledger(self.url())


@lru_cache(maxsize=8)
def _open_ledger(url: str) -> Ledger:
    from stella_operators.ledger import Ledger
    from stella_operators.ledger.roles import owns_ledger_tables

    ledger = Ledger.open(url)
    with ledger.engine.connect() as conn:
        if owns_ledger_tables(conn):
            log.warning("the ledger connection's role owns the ledger's tables, so whoever has this connection can "
                        "disable or drop the append-only triggers: migrate as an owner role and connect as an "
                        "application role (`stella ledger migrate --owner-url URL --app-role ROLE`)")
    return ledger
