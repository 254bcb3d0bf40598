"""Engines and migrations for the ledger database (a SQLAlchemy URL: SQLite file or PostgreSQL)."""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from stella_operators.settings import default_ledger_url  # noqa: F401  (re-exported by ledger/)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "stella_ledger_version"
# pg_advisory_xact_lock keys: arbitrary constants, only unique within this database.
MIGRATION_LOCK = 0x5374656C6C61_01
SQLITE_BUSY_TIMEOUT_MS = 30_000


class SchemaOutdated(RuntimeError):
    """The ledger needs a migration that the connected (application) role may not run."""


def make_engine(url: str | sa.URL) -> sa.Engine:
    url = sa.make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # We emit BEGIN ourselves (below), so sqlite3's own implicit transactions are switched off.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if url.database and url.database != ":memory:":
            # WAL lets readers in other Airflow task processes go on while one writes.
            _journal_mode_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front: two writers never interleave a read-then-write
        # (the audit chain tail, a promotion's status), and SQLite's busy timeout makes them queue.
        mode = "IMMEDIATE" if conn.get_execution_options().get("stella_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _journal_mode_wal(cur: Any) -> None:
    """Switch a database file to WAL (persistent: later connections find it set and skip this).

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy timeout, when another connection opens the same fresh file at that moment (several
    Airflow task processes, or `stella ledger migrate`, starting together): retry for a while."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction meant to write: BEGIN IMMEDIATE on SQLite, an ordinary one elsewhere."""
    with engine.connect() as conn:
        conn.execution_options(stella_write=True)
        with conn.begin():
            yield conn


def alembic_config(url: str | sa.URL | None = None) -> Config:
    """Alembic configuration built in code (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) else url
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # the migrations ship inside the package; none means a broken install
        raise RuntimeError(f"no ledger migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn, _alembic_logging(quiet=True):
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def migrate(engine: sa.Engine) -> None:
    """Upgrade to head. Idempotent; concurrent callers take turns (SQLite write lock, PG advisory lock).

    Says nothing when the ledger is already at head (every CLI call and task opens the ledger);
    an actual upgrade is reported on stderr, never on stdout, which scripts parse.
    """
    cfg = alembic_config(engine.url)
    head = head_revision()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        with _alembic_logging(quiet=True):
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current == head:
            return
        cfg.attributes["connection"] = conn
        with _alembic_logging(quiet=False):
            try:
                command.upgrade(cfg, "head")
            except sa.exc.ProgrammingError as exc:
                if "permission denied" not in str(exc.orig) and "must be owner" not in str(exc.orig):
                    raise
                raise SchemaOutdated(
                    f"the ledger schema is at {current or 'nothing'}, this version of stella needs {head}, and "
                    f"this connection's role may not change the schema ({str(exc.orig).splitlines()[0]}): run "
                    "`stella ledger migrate --owner-url URL --app-role ROLE` as the owner of the ledger's tables"
                ) from None


@contextmanager
def _alembic_logging(*, quiet: bool) -> Iterator[None]:
    """Alembic's lines go to stderr only (Airflow's logging setup would print them on stdout), and
    not at all when `quiet` (looking up the current revision is not news)."""
    logger = logging.getLogger("alembic")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ledger migration: %(message)s"))
    saved = (logger.level, logger.propagate, list(logger.handlers))
    logger.handlers = [] if quiet else [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers = saved[2]
