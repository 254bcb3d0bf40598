"""`stella ledger migrate`: upgrade the ledger's schema as the owner of its tables and grant the
application role exactly what it needs (ledger/roles.py). stdout: one line, the revision."""

from __future__ import annotations

import argparse
import os
import sys

OWNER_CONN_ID = "stella_ledger_owner"
OWNER_URL_ENV = "STELLA_LEDGER_OWNER_URL"


def _owner_url(args: argparse.Namespace) -> str:
    """--owner-url, else $STELLA_LEDGER_OWNER_URL, else Connection stella_ledger_owner, else the
    application's own ledger connection (no separate owner: fine for SQLite and demos)."""
    if args.owner_url:
        return str(args.owner_url)
    if os.environ.get(OWNER_URL_ENV):
        return os.environ[OWNER_URL_ENV]
    # Only now Airflow (its import is ~1.3 s of the command's ~3 s): an explicit URL needs none.
    from stella_operators.hooks.connections import connection_or_none
    from stella_operators.hooks.ledger import LedgerHook, ledger_url_from_connection

    conn = connection_or_none(OWNER_CONN_ID)
    if conn is not None:
        return ledger_url_from_connection(conn)
    return LedgerHook(args.ledger_conn_id).url()


def cmd_ledger_migrate(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from stella_operators.ledger.database import current_revision, make_engine, migrate
    from stella_operators.ledger.roles import RoleError, grant_app_role

    engine = make_engine(_owner_url(args))
    try:
        migrate(engine)
        if args.app_role:
            if engine.dialect.name != "postgresql":
                print("stella: --app-role needs a PostgreSQL ledger (SQLite has no roles)", file=sys.stderr)
                return 2
            with engine.begin() as conn:
                try:
                    statements = grant_app_role(conn, args.app_role)
                except RoleError as exc:
                    print(f"stella: {exc}", file=sys.stderr)
                    return 2
            print(f"granted {args.app_role}: {len(statements)} statements (append-only tables: SELECT, INSERT)",
                  file=sys.stderr)
        revision = current_revision(engine)
    except sa.exc.OperationalError as exc:
        print(f"stella: cannot reach the ledger database: {str(exc.orig).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(revision)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    led = sub.add_parser("ledger", help="the ledger database: migrate its schema as the owner role")
    ls = led.add_subparsers(dest="ledger_cmd", required=True)
    mg = ls.add_parser("migrate", help="upgrade the schema as the tables' owner; grant the application role",
                       description="Run as the role that owns the ledger's tables; the application connects as "
                                   "--app-role, which owns nothing and may not alter, disable or drop the "
                                   "append-only triggers (PostgreSQL).")
    mg.add_argument("--owner-url", help=f"SQLAlchemy URL of the owner role (default ${OWNER_URL_ENV}, the "
                                        f"Connection {OWNER_CONN_ID!r}, else the ledger connection)")
    mg.add_argument("--app-role", help="PostgreSQL role the application connects as (granted after migrating)")
    mg.set_defaults(func=cmd_ledger_migrate)
