"""PostgreSQL: the application role may write history, never rewrite it.

Migrations run as the role that owns the ledger's tables (the owner); the application (Airflow's
workers, the API server, the CLI) connects as another role that owns nothing. Only an owner (or a
superuser) may ALTER TABLE ... DISABLE TRIGGER, DROP TRIGGER or DROP TABLE, so the append-only
triggers hold against whoever has the application's connection; and the application role is not
even granted UPDATE or DELETE on the append-only tables. `grant_app_role` (run by
`stella ledger migrate --app-role ROLE` after every migration) grants exactly:

    append-only tables (evidence, audit_events, ...)   SELECT, INSERT
    deploy_locks                                       SELECT, INSERT, UPDATE, DELETE
    other tables (promotions, releases, deployments)   SELECT, INSERT, UPDATE  (triggers guard releases)
    the migration version table                        SELECT
    sequences                                          USAGE, SELECT

SQLite has no roles: a SQLite ledger is as safe as its file's permissions (the README says so).
"""

from __future__ import annotations

import re

import sqlalchemy as sa

APPEND_ONLY = frozenset({"evidence", "audit_events", "promotion_events", "signing_keys", "approvals",
                         "gate_verdicts"})
DELETABLE = frozenset({"deploy_locks"})
VERSION_TABLE = "stella_ledger_version"
_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleError(ValueError):
    """The application role is missing, unsafe (owner or superuser), or not a valid name."""


def _quoted(role: str) -> str:
    if not _ROLE_RE.match(role):
        raise RoleError(f"role name {role!r}: use lower-case letters, digits and _ (PostgreSQL identifier)")
    return f'"{role}"'


def grant_app_role(conn: sa.Connection, role: str) -> list[str]:
    """Grant `role` exactly what the application needs (see the module docstring); returns the
    statements run. Run as the owner of the tables, after migrating."""
    q = _quoted(role)
    facts = conn.execute(sa.text("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = :r"),
                         {"r": role}).one_or_none()
    if facts is None:
        raise RoleError(f"role {role!r} does not exist: CREATE ROLE {role} LOGIN PASSWORD '...' first")
    if facts.rolsuper:
        raise RoleError(f"role {role!r} is a superuser: it could disable the append-only triggers; use a plain role")
    owner = conn.execute(sa.text("SELECT current_user")).scalar_one()
    if owner == role:
        raise RoleError(f"role {role!r} is the role migrating (the owner): the application needs a role of its own")
    tables = [r[0] for r in conn.execute(sa.text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"))]
    statements = [f"GRANT USAGE ON SCHEMA {_schema(conn)} TO {q}"]
    for table in tables:
        statements.append(f'REVOKE ALL ON TABLE "{table}" FROM {q}')
        if table == VERSION_TABLE:
            privileges = "SELECT"
        elif table in APPEND_ONLY:
            privileges = "SELECT, INSERT"
        elif table in DELETABLE:
            privileges = "SELECT, INSERT, UPDATE, DELETE"
        else:
            privileges = "SELECT, INSERT, UPDATE"
        statements.append(f'GRANT {privileges} ON TABLE "{table}" TO {q}')
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_schema(conn)} TO {q}")
    for statement in statements:
        conn.execute(sa.text(statement))
    return statements


def _schema(conn: sa.Connection) -> str:
    return '"' + str(conn.execute(sa.text("SELECT current_schema()")).scalar_one()).replace('"', '""') + '"'


def owns_ledger_tables(conn: sa.Connection) -> bool:
    """True when the connected role owns the evidence table (so it could drop its triggers)."""
    if conn.dialect.name != "postgresql":
        return False
    owner = conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                                 "AND tablename = 'evidence'")).scalar_one_or_none()
    return owner is not None and owner == conn.execute(sa.text("SELECT current_user")).scalar_one()
