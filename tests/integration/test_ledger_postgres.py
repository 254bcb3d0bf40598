"""The ledger's core behaviours on a real PostgreSQL server (the same test bodies as on SQLite)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stella_operators.ledger import Ledger
from tests.unit.ledger.test_locks import LockBehaviour
from tests.unit.test_ledger import LedgerBehaviour, make_release, refused


class TestLedgerPostgres(LedgerBehaviour):
    @pytest.fixture
    def ledger_url(self, fresh_postgres_url: str) -> str:
        return fresh_postgres_url

    def test_truncate_is_refused_too(self, ledger: Ledger):
        ledger.add_release(make_release(1))
        for table in ("evidence", "audit_events", "promotion_events", "signing_keys"):
            refused(ledger, f"TRUNCATE {table} CASCADE")
        refused(ledger, "TRUNCATE releases CASCADE")
        assert ledger.get_release("rel-shop-1").name == "shop-1.1.0"

    def test_timestamps_are_timestamptz_and_json_is_jsonb(self, ledger: Ledger):
        with ledger.engine.connect() as conn:
            types = dict(conn.execute(sa.text(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'releases'")).all())
        assert types["created_at"] == "timestamp with time zone"
        assert types["components"] == "jsonb"


class TestLocksPostgres(LockBehaviour):
    @pytest.fixture
    def ledger_url(self, fresh_postgres_url: str) -> str:
        return fresh_postgres_url
