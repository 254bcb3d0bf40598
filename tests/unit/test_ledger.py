"""The ledger on SQLite. `LedgerBehaviour` is backend-neutral: the PostgreSQL tests run it too."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from stella_operators.evidence import SigningKey, seal_evidence
from stella_operators.gates.contract import GateVerdict, Verdict
from stella_operators.ledger import DeploymentStatus, Ledger, LedgerError, NotFound
from stella_operators.ledger.database import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    write_transaction,
)
from stella_operators.ledger.tables import metadata
from stella_operators.promotion.state import IllegalTransition
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release, ReleaseState

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
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
    """`sql` fails: by the ledger's own rule (`match`), or, for the PostgreSQL application role, because
    the role holds no such privilege at all (tests/integration/test_ledger_roles.py)."""
    with pytest.raises(sa.exc.DBAPIError, match=f"{match}|permission denied for table"):
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(sql)


def schema_diffs(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata)


def race(n: int, work) -> tuple[list, list[BaseException]]:
    """Run work(i) in n threads released at the same moment; (results by i, errors)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


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
        assert current_revision(ledger.engine) == head_revision() == "0004"
        assert schema_diffs(ledger.engine) == []

    def test_migration_0002_upgrades_a_0001_ledger(self, ledger_url):
        engine = make_engine(ledger_url)
        cfg = alembic_config(engine.url)
        with write_transaction(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        assert current_revision(engine) == "0001"
        assert "approvals" not in sa.inspect(engine).get_table_names()
        engine.dispose()

        old = Ledger(ledger_url)  # not migrated: works on the 0001 tables
        release = old.add_release(make_release(1))
        promotion = self.promote(old, release, path=[S.EVALUATING, S.AWAITING_APPROVAL])
        old.close()

        with Ledger.open(ledger_url) as ledger:
            assert current_revision(ledger.engine) == "0004"
            assert schema_diffs(ledger.engine) == []
            assert ledger.get_release(release.id) == release
            assert ledger.get_promotion(promotion.id) == promotion
            assert ledger.promotions_with_status(S.AWAITING_APPROVAL) == [promotion]
            ledger.record_approval(promotion.id, "bob", "approve", "ok", release.content_hash, counted=True)
            ledger.record_gate_verdicts(promotion.id, [(GateVerdict(
                gate_type="freeze", gate_name="freeze", verdict=Verdict.PASS, reasons=(), message="open",
                inputs_hash="sha256:" + "b" * 64, evaluated_at=T0), {"windows": []})])
            assert ledger.acquire_deploy_lock("shop", "prod", promotion.id, "promote_shop/run").acquired
            # The guards fire per row, so there are rows for them to guard.
            refused(ledger, "UPDATE approvals SET approver = 'mallory'")
            refused(ledger, "DELETE FROM gate_verdicts")
            assert ledger.verify_audit_chain() == (True, None)

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
        assert ledger.registered_keys().key_ids() == [key.key_id]

        stranger = seal_evidence("approval", subjects, {"approver": "bob"}, SigningKey.generate(), T0)
        with pytest.raises(LedgerError, match="unknown key id"):
            ledger.append_evidence(stranger)
        forged = record.model_copy(update={"id": "sha256:" + "0" * 64})
        with pytest.raises(LedgerError, match="content hash mismatch"):
            ledger.append_evidence(forged)
        with pytest.raises(LedgerError, match="does not match"):
            ledger.register_key("ed25519:0000000000000000", key.public_pem())
        assert ledger.register_key(key.key_id, key.public_pem().decode()) == key.key_id

    # -- approvals ------------------------------------------------------------------------------

    def test_approvals_recorded_in_order_and_append_only(self, ledger: Ledger, key: SigningKey):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING, S.AWAITING_APPROVAL])
        h = release.content_hash
        record = seal_evidence("approval", [("registry.local/shop/web", release.digests()["web"])],
                               {"approver": "bob", "decision": "approve"}, key, T0)
        ledger.append_evidence(record, promotion_id=promotion.id)

        bob = ledger.record_approval(promotion.id, "bob", "approve", "looks good", h, counted=True,
                                     evidence_id=record.id)
        alice = ledger.record_approval(promotion.id, "alice", "approve", "", h, counted=False,
                                       refusal="approval.requester_cannot_approve")
        again = ledger.record_approval(promotion.id, "bob", "approve", "twice", h, counted=True)
        carol = ledger.record_approval(promotion.id, "carol", "reject", "no", "sha256:" + "e" * 64, counted=True)
        assert (bob.counted, bob.refusal, bob.evidence_id, bob.comment) == (True, None, record.id, "looks good")
        assert (alice.counted, alice.refusal) == (False, "approval.requester_cannot_approve")
        # The same person counted twice for the same decision: stored, but as a duplicate.
        assert (again.counted, again.refusal) == (False, "approval.duplicate")
        assert bob.at.tzinfo is not None and bob.content_hash == h
        stored = ledger.approvals_for(promotion.id)
        assert stored == [bob, alice, again, carol]
        assert [a.seq for a in stored] == sorted(a.seq for a in stored)
        assert ledger.approvals_for("prm-other") == []
        records = [e for e in ledger.audit_events(f"promotion:{promotion.id}") if e.action == "approval.record"]
        assert [(e.actor, e.detail["counted"], e.detail["refusal"]) for e in records] == \
            [("bob", True, None), ("alice", False, "approval.requester_cannot_approve"),
             ("bob", False, "approval.duplicate"), ("carol", True, None)]

        refused(ledger, "UPDATE approvals SET counted = TRUE WHERE approver = 'alice'")
        refused(ledger, "UPDATE approvals SET content_hash = 'sha256:x'")
        refused(ledger, "DELETE FROM approvals")
        if ledger.engine.dialect.name == "postgresql":
            refused(ledger, "TRUNCATE approvals")
        # The database keeps the pairing rules too, whoever writes.
        for bad in ("'maybe', TRUE, NULL", "'approve', TRUE, 'approval.not_in_groups'", "'approve', FALSE, NULL"):
            refused(ledger, "INSERT INTO approvals (promotion_id, approver, decision, counted, refusal, comment, "
                            f"content_hash, at) VALUES ('{promotion.id}', 'eve', {bad}, '', 'h', '2025-03-01')",
                    "(?i)check constraint")
        assert ledger.approvals_for(promotion.id) == stored

    def test_record_approval_refuses_inconsistent_input(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING, S.AWAITING_APPROVAL])
        h = release.content_hash
        with pytest.raises(LedgerError, match="either counts"):
            ledger.record_approval(promotion.id, "bob", "approve", "", h, counted=True, refusal="approval.duplicate")
        with pytest.raises(LedgerError, match="either counts"):
            ledger.record_approval(promotion.id, "bob", "approve", "", h, counted=False)
        with pytest.raises(LedgerError, match="'approve' or 'reject'"):
            ledger.record_approval(promotion.id, "bob", "lgtm", "", h, counted=True)
        with pytest.raises(LedgerError, match="content hash"):
            ledger.record_approval(promotion.id, "bob", "approve", "", "", counted=True)
        with pytest.raises(NotFound):
            ledger.record_approval("prm-missing", "bob", "approve", "", h, counted=True)
        with pytest.raises(NotFound, match="evidence"):
            ledger.record_approval(promotion.id, "bob", "approve", "", h, counted=True, evidence_id="sha256:nope")
        assert ledger.approvals_for(promotion.id) == []

    def test_a_rejection_after_ones_own_approval_still_counts(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING, S.AWAITING_APPROVAL])
        h = release.content_hash
        ledger.record_approval(promotion.id, "bob", "approve", "", h, counted=True)
        second = ledger.record_approval(promotion.id, "bob", "reject", "found a problem", h, counted=True)
        assert (second.counted, second.refusal) == (True, None)

    def test_same_approver_racing_counts_once(self, ledger: Ledger, ledger_url):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING, S.AWAITING_APPROVAL])
        others = [Ledger(ledger_url) for _ in range(4)]
        results, errors = race(4, lambda i: others[i].record_approval(
            promotion.id, "bob", "approve", f"try {i}", release.content_hash, counted=True))
        for lg in others:
            lg.close()
        assert errors == []
        assert sorted((a.counted, a.refusal) for a in results) == \
            [(False, "approval.duplicate")] * 3 + [(True, None)]
        assert len(ledger.approvals_for(promotion.id)) == 4

    def test_promotions_with_status(self, ledger: Ledger):
        r1, r2 = ledger.add_release(make_release(1)), ledger.add_release(make_release(2))
        waiting = [S.EVALUATING, S.AWAITING_APPROVAL]
        p1 = self.promote(ledger, r1, "prod", waiting)
        p2 = self.promote(ledger, r2, "stage", waiting)
        self.promote(ledger, r2, "prod", [S.EVALUATING])
        blog = ledger.add_release(make_release(3, app="blog"))
        p4 = self.promote(ledger, blog, "prod", waiting)
        assert ledger.promotions_with_status("awaiting_approval") == [p1, p2, p4]
        assert ledger.promotions_with_status(S.AWAITING_APPROVAL, app="shop") == [p1, p2]
        assert ledger.promotions_with_status(S.AWAITING_APPROVAL, app="shop", environment="prod") == [p1]
        assert ledger.promotions_with_status(S.AWAITING_APPROVAL, environment="prod") == [p1, p4]
        assert ledger.promotions_with_status(S.DEPLOYED) == []
        with pytest.raises(ValueError):
            ledger.promotions_with_status("waiting")

    # -- gate verdicts --------------------------------------------------------------------------

    def test_gate_verdicts_round_trip_and_append_only(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        promotion = self.promote(ledger, release, path=[S.EVALUATING])
        cet = timezone(timedelta(hours=1))
        fail = GateVerdict(gate_type="security", gate_name="prod-scan", verdict=Verdict.FAIL,
                           reasons=("security.critical_over_max", "security.kev_listed"),
                           message="2 criticals (max 0)", remedy="fix CVE-2024-1 and CVE-2024-2",
                           details={"critical": 2, "cves": ["CVE-2024-1", "CVE-2024-2"], "ratio": 0.5,
                                    "nested": {"ok": False, "none": None}},
                           inputs_hash="sha256:" + "a" * 64,
                           evaluated_at=datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=cet))
        ok = GateVerdict(gate_type="freeze", gate_name="freeze", verdict=Verdict.PASS, reasons=(), message="open",
                         inputs_hash="sha256:" + "b" * 64, evaluated_at=T0)
        inputs_fail = {"now": "2025-03-01T09:00:00Z", "reports": [{"digest": "sha256:1", "critical": 2}]}
        inputs_ok = {"now": "2025-03-01T09:00:00Z", "windows": []}
        ledger.record_gate_verdicts(promotion.id, [(fail, inputs_fail), (ok, inputs_ok)])
        stored = ledger.gate_verdicts_for(promotion.id)
        assert stored == [(fail, inputs_fail), (ok, inputs_ok)]
        assert isinstance(stored[0][0].reasons, tuple) and stored[0][0].verdict is Verdict.FAIL
        assert stored[0][0].evaluated_at == fail.evaluated_at and stored[0][0].evaluated_at.tzinfo is not None
        assert ledger.gate_verdicts_for("prm-other") == []
        events = [e for e in ledger.audit_events(f"promotion:{promotion.id}") if e.action == "gate.verdict"]
        assert [(e.detail["gate_name"], e.detail["verdict"], e.detail["inputs_hash"]) for e in events] == \
            [("prod-scan", "fail", fail.inputs_hash), ("freeze", "pass", ok.inputs_hash)]

        refused(ledger, "UPDATE gate_verdicts SET verdict = 'pass'")
        refused(ledger, "DELETE FROM gate_verdicts")
        if ledger.engine.dialect.name == "postgresql":
            refused(ledger, "TRUNCATE gate_verdicts")
        # All or nothing, and nothing for an unknown promotion or secret-looking inputs.
        with pytest.raises(NotFound):
            ledger.record_gate_verdicts("prm-missing", [(ok, inputs_ok)])
        with pytest.raises(ValueError, match="secrets"):
            ledger.record_gate_verdicts(promotion.id, [(ok, inputs_ok), (ok, {"api_token": "x"})])
        assert ledger.gate_verdicts_for(promotion.id) == stored

    # -- audit ----------------------------------------------------------------------------------

    def test_audit_chain_detects_a_tampered_row(self, ledger: Ledger):
        release = ledger.add_release(make_release(1))
        self.promote(ledger, release)
        ledger.audit("bob", "airflow.task_marked_success", "task:promote_shop/deploy", {"run_id": "r1"})
        assert ledger.verify_audit_chain() == (True, None)
        events = ledger.audit_events()
        assert events[0].previous_hash == "0" * 64
        assert all(b.previous_hash == a.hash for a, b in pairwise(events))

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
