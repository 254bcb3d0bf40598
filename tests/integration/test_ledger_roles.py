"""On a real PostgreSQL server the application role may write history but never rewrite it: the
ledger's tables belong to an owner role that only `stella ledger migrate` uses; the application
role (what Airflow's `stella_ledger` Connection logs in as) owns nothing.

Also: the whole ledger behaviour suite and the lock suite pass as the application role, so the
grants are enough for everything the product does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from stella_operators.ledger import Ledger
from stella_operators.ledger.database import SchemaOutdated, head_revision
from tests.unit.ledger.test_locks import LockBehaviour
from tests.unit.test_ledger import LedgerBehaviour, make_release

ROOT = Path(__file__).resolve().parents[2]


def _superuser(server, sql: str, dbname: str = "postgres") -> None:
    conn = psycopg2.connect(host=server.host, port=server.port, user="postgres", dbname=dbname)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def roles(postgres_server, tmp_path):
    """A database owned by a fresh owner role, migrated by `stella ledger migrate` (the CLI, as an
    operator runs it), and the URL of a fresh application role."""
    tag = uuid.uuid4().hex[:10]
    owner, app, db = f"own_{tag}", f"app_{tag}", f"ledger_{tag}"
    _superuser(postgres_server, f'CREATE ROLE "{owner}" LOGIN')
    _superuser(postgres_server, f'CREATE ROLE "{app}" LOGIN')
    _superuser(postgres_server, f'CREATE DATABASE "{db}" OWNER "{owner}"')
    base = f"postgresql+psycopg2://{{}}@{postgres_server.host}:{postgres_server.port}/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STELLA_", "AIRFLOW_CONN_STELLA"))}
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "ledger", "migrate",
                          "--owner-url", base.format(owner), "--app-role", app],
                         env={**env, "PYTHONPATH": str(ROOT), "STELLA_HOME": str(tmp_path / "home")},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == head_revision() + "\n"  # nothing but the answer on stdout
    return {"owner_url": base.format(owner), "app_url": base.format(app), "app": app, "owner": owner,
            "server": postgres_server, "db": db}


@pytest.mark.parametrize("sql, message", [
    ("ALTER TABLE evidence DISABLE TRIGGER evidence_append_only", "must be owner of table evidence"),
    ("ALTER TABLE audit_events DISABLE TRIGGER ALL", "must be owner of table audit_events"),
    ("DROP TRIGGER evidence_append_only ON evidence", "must be owner of relation evidence"),
    ("DROP TABLE evidence CASCADE", "must be owner of table evidence"),
    ("UPDATE evidence SET key_id = 'ed25519:0000000000000000'", "permission denied for table evidence"),
    ("DELETE FROM evidence", "permission denied for table evidence"),
    ("TRUNCATE evidence", "permission denied for table evidence"),
    ("UPDATE audit_events SET actor = 'mallory'", "permission denied for table audit_events"),
    ("DELETE FROM approvals", "permission denied for table approvals"),
    ("CREATE TABLE shadow_evidence (id text)", "permission denied for schema public"),
    ("ALTER TABLE promotions ADD COLUMN note text", "must be owner of table promotions"),
])
def test_the_application_role_cannot_rewrite_history(roles, sql, message):
    with Ledger.open(roles["app_url"]) as ledger:
        ledger.add_release(make_release(1))  # it can write history...
        with pytest.raises(sa.exc.DBAPIError, match=message), ledger.engine.begin() as conn:
            conn.exec_driver_sql(sql)  # ...but not rewrite it
        assert ledger.get_release("rel-shop-1").name == "shop-1.1.0"
        with ledger.engine.connect() as conn:
            triggers = conn.execute(sa.text("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = "
                                            "'evidence'::regclass AND NOT tgisinternal")).all()
        assert ("evidence_append_only", "O") in [tuple(t) for t in triggers]  # still there, still enabled


def test_an_outdated_schema_is_not_migrated_by_the_application_role_and_says_how(roles):
    head = head_revision()
    _superuser(roles["server"], "UPDATE stella_ledger_version SET version_num = '0002'", dbname=roles["db"])
    with pytest.raises(SchemaOutdated, match=rf"schema is at 0002, .* needs {head}.*stella ledger migrate --owner-url"):
        Ledger.open(roles["app_url"])
    _superuser(roles["server"], f"UPDATE stella_ledger_version SET version_num = '{head}'", dbname=roles["db"])
    Ledger.open(roles["app_url"]).close()


def test_a_superuser_or_the_owner_is_refused_as_the_application_role(roles, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STELLA_", "AIRFLOW_CONN_STELLA"))}
    for role, why in (("postgres", "is a superuser"), (roles["owner"], "is the role migrating")):
        out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "ledger", "migrate",
                              "--owner-url", roles["owner_url"], "--app-role", role],
                             env={**env, "PYTHONPATH": str(ROOT), "STELLA_HOME": str(tmp_path / "home")},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and why in out.stderr and out.stdout == "", out.stderr


def test_the_hook_warns_when_the_application_connects_as_the_owner(roles, monkeypatch, caplog, capsys):
    from sqlalchemy.engine import make_url

    from stella_operators.hooks.ledger import LedgerHook, _open_ledger

    owner = make_url(roles["owner_url"])
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps(
        {"conn_type": "postgres", "host": owner.host, "port": owner.port, "login": owner.username,
         "schema": owner.database}))
    _open_ledger.cache_clear()
    LedgerHook().get_conn().close()
    _open_ledger.cache_clear()
    seen = capsys.readouterr()  # Airflow's log handlers write to the console; plain logging to caplog
    assert "owns the ledger's tables" in seen.out + seen.err + caplog.text


class TestLedgerAsTheApplicationRole(LedgerBehaviour):
    @pytest.fixture
    def ledger_url(self, roles) -> str:
        return roles["app_url"]

    @pytest.mark.skip(reason="tampers by dropping a trigger, which only the owner can: the point of this file")
    def test_audit_chain_detects_a_tampered_row(self, ledger):
        """Covered as the owner in test_ledger_postgres.py."""

    @pytest.mark.skip(reason="runs migrations 0001 -> 0002 itself, which is the owner's job (stella ledger migrate)")
    def test_migration_0002_upgrades_a_0001_ledger(self, ledger_url):
        """Covered as the owner in test_ledger_postgres.py."""


class TestLocksAsTheApplicationRole(LockBehaviour):
    @pytest.fixture
    def ledger_url(self, roles) -> str:
        return roles["app_url"]

    @pytest.mark.skip(reason="runs migrations 0002 -> 0003 itself, which is the owner's job (stella ledger migrate)")
    def test_migration_0003_carries_a_held_0002_lock_over(self, ledger_url):
        """Covered as the owner in test_ledger_postgres.py."""


def test_the_compose_stacks_init_script_creates_a_plain_application_role(postgres_server, tmp_path):
    """docker/ledger-db-init.sh, as the postgres image runs it on first start (psql as the owner), against
    the real server; then `stella ledger migrate --app-role` accepts the role it made."""
    tag = uuid.uuid4().hex[:10]
    db, app = f"ledger_{tag}", f"app_{tag}"
    _superuser(postgres_server, f'CREATE DATABASE "{db}"')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STELLA_", "AIRFLOW_CONN_STELLA"))},
           "PGHOST": postgres_server.host, "PGPORT": str(postgres_server.port), "POSTGRES_USER": "postgres",
           "POSTGRES_DB": db, "LEDGER_APP_USER": app, "LEDGER_APP_PASSWORD": "it's \"quoted\"; DROP TABLE x"}
    out = subprocess.run(["bash", str(ROOT / "docker" / "ledger-db-init.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    conn = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user="postgres", dbname=db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
                        (app,))
            assert cur.fetchone() == (False, False, False, True)
    finally:
        conn.close()
    url = f"postgresql+psycopg2://postgres@{postgres_server.host}:{postgres_server.port}/{db}"
    migrated = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "ledger", "migrate", "--owner-url",
                               url, "--app-role", app], env={**env, "PYTHONPATH": str(ROOT),
                                                             "STELLA_HOME": str(tmp_path / "home")},
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
