"""The ledger on SQLite. `LedgerBehaviour` is backend-neutral: the PostgreSQL tests run it too."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from stella_operators.evidence import SigningKey, seal_evidence
from stella_operators.ledger import DeploymentStatus, Ledger, LedgerError, NotFound
from stella_operators.ledger.database import VERSION_TABLE, current_revision, head_revision
from stella_operators.ledger.tables import metadata
from stella_operators.promotion.state import IllegalTransition, PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release, ReleaseState

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
HAPPY_PATH = [S.EVALUATING, S.APPROVED, S.DEPLOYING, S.VERIFYING, S.DEPLOYED]


def make_release(n: int, app: str = "shop", state: ReleaseState = ReleaseState.SEALED) -> Release:
    release = Release.seal(
        id=f"rel-{app}-{n}", app=app, name=f"{app}-1.{n}.0", created_at=T0, created_by="ci-bot",
        source={"commit": f"{n:040x}"},
        components=[ComponentDigest(name="web", repository=f"registry.local/{app}/web", digest=f"sha256:{n:064x}",
                                    tag=f"1.{n}.0"),
                    ComponentDigest(name="api", repository=f"registry.local/{app}/api",
                                    digest=f"sha256:{n + 100:064x}")])
    return release.model_copy(update={"state": state}) if state != ReleaseState.SEALED else release


def drop_trigger(conn: sa.Connection, table: str, kind: str) -> None:
    """What an attacker with database access does first: switch the guard off."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TRIGGER {table}_no_{kind}")
    else:
        conn.exec_driver_sql(f"DROP TRIGGER {table}_append_only ON {table}")


def refused(ledger: Ledger, sql: str, match: str = "append-only") -> None:
    with pytest.raises(sa.exc.DBAPIError, match=match):
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(sql)


class LedgerBehaviour:
    """Behaviours every backend must show. Subclasses provide a `ledger_url` fixture for an empty database."""

    @pytest.fixture
    def ledger(self, ledger_url):
        with Ledger.open(ledger_url) as ledger:
            yield ledger

    @pytest.fixture
    def key(self, ledger: Ledger) -> SigningKey:
        key = SigningKey.generate()
        ledger.register_key(key.key_id, key.public_pem())
        return key

    def promote(self, ledger: Ledger, release: Release, env: str = "prod", path=HAPPY_PATH, run: str | None = None):
        promotion = ledger.create_promotion(release.app, env, release.id, "alice", "ship it", "promote_shop", run)
        for status in path:
            promotion = ledger.transition(promotion.id, status, actor="alice")
        return promotion

    # -- schema ---------------------------------------------------------------------------------

    def test_migrations_idempotent_and_match_tables(self, ledger: Ledger, ledger_url):
        ledger.migrate()
        Ledger.open(ledger_url).close()
        assert current_revision(ledger.engine) == head_revision() == "0001"
        with ledger.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata)
        assert diffs == []

    def test_concurrent_migrate(self, ledger_url):
        ledgers = [Ledger(ledger_url) for _ in range(3)]
        errors: list[BaseException] = []

        def run(ledger):
            try:
                ledger.migrate()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(lg,)) for lg in ledgers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert current_revision(ledgers[0].engine) == head_revision()
        for lg in ledgers:
            lg.close()

    # -- releases -------------------------------------------------------------------------------

    def test_release_round_trip_and_unique_name(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        assert ledger.get_release(release.id) == release
        assert ledger.find_release("shop", "shop-1.1.0") == release
        assert ledger.find_release("shop", "nope") is None
        assert [r.id for r in ledger.list_releases("shop")] == [release.id]
        with pytest.raises(LedgerError, match="already has a release named 'shop-1.1.0'"):
            ledger.add_release(make_release(1).model_copy(update={"id": "other-id"}))
        with pytest.raises(NotFound):
            ledger.get_release("missing")

    def test_sealed_release_is_immutable_in_the_database(self, ledger: Ledger):
        ledger.add_release(make_release(1))
        where = "WHERE id = 'rel-shop-1'"
        refused(ledger, f"UPDATE releases SET components = '[]' {where}", "sealed release is immutable")
        refused(ledger, f"UPDATE releases SET content_hash = 'sha256:x' {where}", "sealed release is immutable")
        refused(ledger, f"UPDATE releases SET state = 'draft' {where}", "sealed release is immutable")
        refused(ledger, f"DELETE FROM releases {where}", "sealed release is immutable")
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE releases SET state = 'deprecated' {where}")
            conn.exec_driver_sql(f"UPDATE releases SET state = 'archived' {where}")
        assert ledger.get_release("rel-shop-1").state == ReleaseState.ARCHIVED
        refused(ledger, f"UPDATE releases SET content_hash = 'sha256:x' {where}", "sealed release is immutable")
        # A draft may still change.
        ledger.add_release(make_release(2, state=ReleaseState.DRAFT))
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE releases SET source = '{}' WHERE id = 'rel-shop-2'")

    # -- append-only ----------------------------------------------------------------------------

    def test_append_only_tables_refuse_update_and_delete(self, ledger: Ledger, key: SigningKey):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING])
        ledger.append_evidence(seal_evidence("release", [("registry.local/shop/web", release.digests()["web"])],
                                             {"release": release.name}, key, T0), release_id=release.id)
        for table in ("evidence", "audit_events", "promotion_events", "signing_keys"):
            column = "key_id" if table == "signing_keys" else ("actor" if table != "evidence" else "type")
            refused(ledger, f"UPDATE {table} SET {column} = 'mallory'")
            refused(ledger, f"DELETE FROM {table}")
        assert len(ledger.evidence_for(release_id=release.id)) == 1
        assert ledger.get_promotion(promotion.id).status == S.EVALUATING

    # -- promotions -----------------------------------------------------------------------------

    def test_promotion_lifecycle_and_illegal_transition(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        promotion = ledger.create_promotion("shop", "prod", release.id, "alice", "ship", "promote_shop", "run-1")
        assert promotion.status == S.REQUESTED and promotion.dag_id == "promote_shop"
        assert ledger.find_promotion_by_run("promote_shop", "run-1") == promotion
        promotion = ledger.transition(promotion.id, S.EVALUATING, actor="scheduler", detail={"gates": 3})
        audit_before = ledger.audit_events()

        with pytest.raises(IllegalTransition, match="cannot go from evaluating to deployed"):
            ledger.transition(promotion.id, S.DEPLOYED, actor="mallory")
        assert ledger.get_promotion(promotion.id) == promotion
        assert ledger.audit_events() == audit_before

        ledger.set_decision(promotion.id, {"verdict": "pass", "gates": ["security"]}, actor="scheduler")
        for status in HAPPY_PATH[1:]:
            promotion = ledger.transition(promotion.id, status, actor="alice")
        assert promotion.status == S.DEPLOYED and promotion.terminal
        assert promotion.decision == {"verdict": "pass", "gates": ["security"]}
        with pytest.raises(IllegalTransition):
            ledger.transition(promotion.id, S.ROLLED_BACK, actor="alice")
        actions = [e.action for e in ledger.audit_events(f"promotion:{promotion.id}")]
        assert actions == ["promotion.create", "promotion.transition", "promotion.decision"] + \
            ["promotion.transition"] * 4

    def test_create_promotion_rules(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        other = ledger.add_release(make_release(2))
        first = ledger.create_promotion("shop", "prod", release.id, "alice", "r", "dag", "run-1")
        assert ledger.create_promotion("shop", "prod", release.id, "alice", "r", "dag", "run-1") == first
        with pytest.raises(LedgerError, match="already promotes"):
            ledger.create_promotion("shop", "prod", other.id, "alice", "r", "dag", "run-1")
        with pytest.raises(LedgerError, match="belongs to app 'shop'"):
            ledger.create_promotion("blog", "prod", release.id, "alice", "r")
        draft = ledger.add_release(make_release(3, state=ReleaseState.DRAFT))
        with pytest.raises(LedgerError, match="draft"):
            ledger.create_promotion("shop", "prod", draft.id, "alice", "r")
        with pytest.raises(ValueError, match="secrets"):
            ledger.set_decision(first.id, {"api_token": "x"})

    def test_deployed_release_and_latest_promotion(self, ledger: Ledger):
        r1, r2, r3 = (ledger.add_release(make_release(n)) for n in (1, 2, 3))
        assert ledger.deployed_release("shop", "prod") is None
        p1 = self.promote(ledger, r1)
        assert ledger.deployed_release("shop", "prod") == r1
        self.promote(ledger, r2, path=[S.EVALUATING, S.APPROVED, S.DEPLOYING, S.ROLLED_BACK])
        assert ledger.deployed_release("shop", "prod") == r1
        # Requested first, deployed last: what runs is the one that reached `deployed` last.
        p3 = self.promote(ledger, r3, path=[])
        p1b = self.promote(ledger, r1, path=[])
        self.promote(ledger, r2, env="stage")
        ledger.transition(p1b.id, S.EVALUATING, actor="alice")
        for status in HAPPY_PATH:
            ledger.transition(p3.id, status, actor="alice")
        assert ledger.deployed_release("shop", "prod") == r3
        assert ledger.deployed_release("shop", "stage") == r2
        assert ledger.latest_promotion("shop", "prod").id == p1b.id
        assert ledger.latest_promotion("shop", "prod", S.DEPLOYED).id == p3.id
        assert ledger.latest_promotion("shop", "prod", "rolled_back").release_id == r2.id
        assert ledger.latest_promotion("shop", "dev") is None
        assert p1.id != p1b.id

    # -- deployments ----------------------------------------------------------------------------

    def test_deployment_records(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=HAPPY_PATH[:3])
        # Component names are free text; one named like a secret must not trip the no-secrets check.
        previous = {"host-a": {"web": f"sha256:{9:064x}", "token-service": f"sha256:{8:064x}"}}
        dep_id = ledger.start_deployment(promotion.id, "rolling", previous)
        ledger.add_target_result(dep_id, "host-a", "failed", {"web": f"sha256:{9:064x}"}, {"pull_ms": 5}, "boom")
        ledger.add_target_result(dep_id, "host-a", "succeeded", release.digests(), {"pull_ms": 7}, "ok")
        ledger.add_target_result(dep_id, "host-b", "unchanged", release.digests())
        done = ledger.finish_deployment(dep_id, DeploymentStatus.SUCCEEDED)
        assert done.status == DeploymentStatus.SUCCEEDED and done.finished_at is not None
        assert done.previous == previous
        assert [(t.target, t.status, t.timings) for t in done.targets] == \
            [("host-a", "succeeded", {"pull_ms": 7}), ("host-b", "unchanged", {})]
        assert ledger.deployments_for(promotion.id) == [done]
        with pytest.raises(LedgerError, match="already finished"):
            ledger.finish_deployment(dep_id, "failed", "late")
        with pytest.raises(NotFound):
            ledger.start_deployment("prm-missing", "rolling", {})

    # -- evidence and keys ----------------------------------------------------------------------

    def test_evidence_is_verified_before_it_is_stored(self, ledger: Ledger, key: SigningKey):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING])
        subjects = [("registry.local/shop/web", release.digests()["web"])]
        record = seal_evidence("gate_decision", subjects, {"gate": "security", "verdict": "pass"}, key, T0)
        ledger.append_evidence(record, promotion_id=promotion.id)
        ledger.append_evidence(record, promotion_id=promotion.id)  # same evidence again: no-op
        stored = ledger.get_evidence(record.id)
        assert stored == record and stored.to_file_json() == record.to_file_json()
        assert ledger.evidence_for(promotion_id=promotion.id) == [record]
        assert ledger.trusted_keys().key_ids() == [key.key_id]

        stranger = seal_evidence("approval", subjects, {"approver": "bob"}, SigningKey.generate(), T0)
        with pytest.raises(LedgerError, match="unknown key id"):
            ledger.append_evidence(stranger)
        forged = record.model_copy(update={"id": "sha256:" + "0" * 64})
        with pytest.raises(LedgerError, match="content hash mismatch"):
            ledger.append_evidence(forged)
        with pytest.raises(LedgerError, match="does not match"):
            ledger.register_key("ed25519:0000000000000000", key.public_pem())
        assert ledger.register_key(key.key_id, key.public_pem().decode()) == key.key_id

    # -- audit ----------------------------------------------------------------------------------

    def test_audit_chain_detects_a_tampered_row(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        self.promote(ledger, release)
        ledger.audit("bob", "airflow.task_marked_success", "task:promote_shop/deploy", {"run_id": "r1"})
        assert ledger.verify_audit_chain() == (True, None)
        events = ledger.audit_events()
        assert events[0].previous_hash == "0" * 64
        assert all(b.previous_hash == a.hash for a, b in zip(events, events[1:]))

        victim = events[3].seq
        with ledger.engine.begin() as conn:
            drop_trigger(conn, "audit_events", "update")
            conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = :s"), {"s": victim})
        assert ledger.verify_audit_chain() == (False, victim)

    def test_concurrent_writers_keep_one_chain(self, ledger: Ledger, ledger_url):
        others = [Ledger(ledger_url) for _ in range(4)]
        errors: list[BaseException] = []

        def write(lg: Ledger, n: int):
            try:
                for i in range(5):
                    lg.audit(f"worker-{n}", "test.event", f"item:{n}-{i}", {"i": i})
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(lg, n)) for n, lg in enumerate(others)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(ledger.audit_events()) == 20
        assert ledger.verify_audit_chain() == (True, None)
        for lg in others:
            lg.close()


class TestLedgerSQLite(LedgerBehaviour):
    @pytest.fixture
    def ledger_url(self, tmp_path) -> str:
        return f"sqlite:///{tmp_path / 'ledger.db'}"

    def test_sqlite_runs_in_wal_mode(self, ledger: Ledger):
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
