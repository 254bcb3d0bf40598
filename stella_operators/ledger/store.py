"""The Ledger: the system of record for releases, promotions, deployments, evidence and the audit log.

Plain Python over SQLAlchemy Core; Airflow hooks wrap it. Every mutating method writes its audit
event in the same transaction as the change, so the log and the data never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from stella_operators.evidence.canonical import to_jsonable
from stella_operators.evidence.envelope import EvidenceRecord, assert_no_secrets, verify_evidence
from stella_operators.evidence.keys import TrustedKeys, key_id_for, load_public_pem
from stella_operators.ledger import records
from stella_operators.ledger.audit import AuditEvent, append_audit, list_audit, verify_chain
from stella_operators.ledger.database import make_engine, migrate, write_transaction
from stella_operators.ledger.decisions import LedgerDecisions
from stella_operators.ledger.errors import LedgerError, NotFound
from stella_operators.ledger.locks import LedgerLocks
from stella_operators.ledger.records import Deployment, DeploymentStatus, TargetResult
from stella_operators.ledger.tables import (
    deployments,
    evidence,
    promotion_events,
    promotions,
    releases,
    signing_keys,
    target_results,
)
from stella_operators.promotion.model import Promotion
from stella_operators.promotion.state import PromotionStatus, check_transition
from stella_operators.release.model import Release, ReleaseState
from stella_operators.targets.contract import VersionSticker

P = promotions.c


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _pins(by_target: Mapping[str, Mapping[str, str | None]]) -> list[dict[str, str | None]]:
    """target -> component -> digest as a list of rows: names people choose are values, never keys,
    so a component called e.g. `token-service` cannot trip the no-secrets check."""
    return [{"target": t, "component": c, "digest": d}
            for t, comps in sorted(by_target.items()) for c, d in sorted(comps.items())]


class Ledger(LedgerDecisions, LedgerLocks):
    """The ledger database at a SQLAlchemy URL (`sqlite:///path.db` or `postgresql+psycopg2://...`).

    :param url: where the ledger lives; its own database, never Airflow's metadata database.
    :param clock: returns the current time (UTC-aware); injectable for deterministic tests.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow):
        self.url = url
        self.engine = make_engine(url)
        self._clock = clock

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> Ledger:
        ledger = cls(url, **kwargs)
        ledger.migrate()
        return ledger

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sa.Connection]:
        return write_transaction(self.engine)

    def _read(self) -> sa.Connection:
        return self.engine.connect()

    # -- releases -------------------------------------------------------------------------------

    def add_release(self, release: Release, *, actor: str | None = None) -> Release:
        try:
            release.check_integrity()
        except ValueError as exc:
            raise LedgerError(str(exc)) from None
        with self._write() as conn:
            clash = conn.execute(sa.select(releases.c.id).where(
                releases.c.app == release.app, releases.c.name == release.name)).scalar_one_or_none()
            if clash is not None:
                raise LedgerError(f"app {release.app!r} already has a release named {release.name!r} "
                                  f"(id {clash}); release names are unique per app and never reused")
            try:
                conn.execute(releases.insert().values(**records.release_values(release)))
            except IntegrityError as exc:
                raise LedgerError(f"release {release.id!r} could not be stored: {exc.orig}") from None
            append_audit(conn, actor or release.created_by, "release.add", f"release:{release.id}",
                         {"app": release.app, "name": release.name, "content_hash": release.content_hash,
                          "state": release.state.value}, self._clock())
        return release

    def get_release(self, release_id: str) -> Release:
        with self._read() as conn:
            row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).one_or_none()
        if row is None:
            raise NotFound(f"no release with id {release_id!r}")
        return records.release_from_row(row)

    def find_release(self, app: str, name: str) -> Release | None:
        with self._read() as conn:
            row = conn.execute(sa.select(releases).where(releases.c.app == app,
                                                         releases.c.name == name)).one_or_none()
        return records.release_from_row(row) if row is not None else None

    def list_releases(self, app: str) -> list[Release]:
        with self._read() as conn:
            rows = conn.execute(sa.select(releases).where(releases.c.app == app)
                                .order_by(releases.c.created_at, releases.c.name)).all()
        return [records.release_from_row(r) for r in rows]

    # -- promotions -----------------------------------------------------------------------------

    def create_promotion(self, app: str, environment: str, release_id: str, requested_by: str, reason: str = "",
                         dag_id: str | None = None, run_id: str | None = None) -> Promotion:
        """A new promotion in status `requested`. Idempotent per Airflow run: asking again for the same
        (dag_id, run_id) with the same app, environment and release returns the existing promotion."""
        now = self._clock()
        with self._write() as conn:
            rel = conn.execute(sa.select(releases.c.app, releases.c.state)
                               .where(releases.c.id == release_id)).one_or_none()
            if rel is None:
                raise NotFound(f"no release with id {release_id!r}")
            if rel.app != app:
                raise LedgerError(f"release {release_id!r} belongs to app {rel.app!r}, not {app!r}")
            if rel.state == ReleaseState.DRAFT:
                raise LedgerError(f"release {release_id!r} is a draft; only sealed releases can be promoted")
            if dag_id is not None and run_id is not None:
                existing = conn.execute(sa.select(promotions).where(
                    P.airflow_dag_id == dag_id, P.airflow_run_id == run_id)).one_or_none()
                if existing is not None:
                    if (existing.app, existing.environment, existing.release_id) != (app, environment, release_id):
                        raise LedgerError(f"Airflow run {dag_id}/{run_id} already promotes release "
                                          f"{existing.release_id!r} to {existing.app}/{existing.environment}")
                    return records.promotion_from_row(existing)
            pid = "prm-" + uuid.uuid4().hex
            conn.execute(promotions.insert().values(
                id=pid, app=app, environment=environment, release_id=release_id,
                status=PromotionStatus.REQUESTED.value, requested_by=requested_by, requested_at=now,
                reason=reason, airflow_dag_id=dag_id, airflow_run_id=run_id, decision=None, updated_at=now))
            self._event(conn, pid, None, PromotionStatus.REQUESTED, requested_by, {"reason": reason}, now)
            append_audit(conn, requested_by, "promotion.create", f"promotion:{pid}",
                         {"app": app, "environment": environment, "release_id": release_id, "reason": reason,
                          "dag_id": dag_id, "run_id": run_id}, now)
            row = conn.execute(sa.select(promotions).where(P.id == pid)).one()
        return records.promotion_from_row(row)

    def _event(self, conn: sa.Connection, promotion_id: str, from_status: str | None, to_status: str, actor: str,
               detail: dict[str, Any] | None, at: datetime) -> None:
        conn.execute(promotion_events.insert().values(
            promotion_id=promotion_id, from_status=from_status and str(from_status), to_status=str(to_status),
            at=at, actor=actor, detail=to_jsonable(detail) if detail is not None else None))

    def get_promotion(self, promotion_id: str) -> Promotion:
        with self._read() as conn:
            row = conn.execute(sa.select(promotions).where(P.id == promotion_id)).one_or_none()
        if row is None:
            raise NotFound(f"no promotion with id {promotion_id!r}")
        return records.promotion_from_row(row)

    def find_promotion_by_run(self, dag_id: str, run_id: str) -> Promotion | None:
        with self._read() as conn:
            row = conn.execute(sa.select(promotions).where(P.airflow_dag_id == dag_id,
                                                           P.airflow_run_id == run_id)).one_or_none()
        return records.promotion_from_row(row) if row is not None else None

    def transition(self, promotion_id: str, new_status: PromotionStatus | str, *, actor: str,
                   detail: dict[str, Any] | None = None) -> Promotion:
        """Move a promotion along the state machine; an illegal move raises IllegalTransition and changes nothing."""
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(sa.select(promotions).where(P.id == promotion_id).with_for_update()).one_or_none()
            if row is None:
                raise NotFound(f"no promotion with id {promotion_id!r}")
            self._transition_in(conn, promotion_id, row.status, new_status, actor, detail, now)
            row = conn.execute(sa.select(promotions).where(P.id == promotion_id)).one()
        return records.promotion_from_row(row)

    def _transition_in(self, conn: sa.Connection, promotion_id: str, current: str, new_status: PromotionStatus | str,
                       actor: str, detail: dict[str, Any] | None, now: datetime) -> PromotionStatus:
        """The status change inside the caller's transaction (which read `current`, best under a row lock)."""
        new = check_transition(current, new_status)
        # The status guard makes the update lose, not overwrite, if someone moved it meanwhile.
        done = conn.execute(promotions.update().where(P.id == promotion_id, P.status == current)
                            .values(status=new.value, updated_at=now)).rowcount
        if done != 1:
            raise LedgerError(f"promotion {promotion_id} changed status concurrently; retry")
        self._event(conn, promotion_id, current, new, actor, detail, now)
        append_audit(conn, actor, "promotion.transition", f"promotion:{promotion_id}",
                     {"from": current, "to": new.value, "detail": detail or {}}, now)
        return new

    def set_decision(self, promotion_id: str, decision: dict[str, Any], *, actor: str = "system") -> Promotion:
        decision = to_jsonable(decision)
        assert_no_secrets(decision, "decision")
        now = self._clock()
        with self._write() as conn:
            done = conn.execute(promotions.update().where(P.id == promotion_id)
                                .values(decision=decision, updated_at=now)).rowcount
            if done != 1:
                raise NotFound(f"no promotion with id {promotion_id!r}")
            append_audit(conn, actor, "promotion.decision", f"promotion:{promotion_id}", {"decision": decision}, now)
            row = conn.execute(sa.select(promotions).where(P.id == promotion_id)).one()
        return records.promotion_from_row(row)

    def _latest(self, conn: sa.Connection, app: str, environment: str,
                status: PromotionStatus | None) -> sa.Row[Any] | None:
        # Ordered by when the promotion entered the status (event seq, not wall clocks of workers);
        # with no status, by when it was requested.
        e = promotion_events.c
        entered = str(status) if status is not None else PromotionStatus.REQUESTED.value
        query = (sa.select(promotions).join(promotion_events, sa.and_(e.promotion_id == P.id, e.to_status == entered))
                 .where(P.app == app, P.environment == environment).order_by(e.seq.desc()).limit(1))
        if status is not None:
            query = query.where(P.status == entered)
        return conn.execute(query).one_or_none()

    def latest_promotion(self, app: str, environment: str,
                         status: PromotionStatus | str | None = None) -> Promotion | None:
        """The most recently requested promotion, or, given a status, the one that most recently entered it."""
        with self._read() as conn:
            row = self._latest(conn, app, environment, PromotionStatus(status) if status else None)
        return records.promotion_from_row(row) if row is not None else None

    def deployed_release(self, app: str, environment: str) -> Release | None:
        """The release of the promotion that most recently reached `deployed` in this environment."""
        with self._read() as conn:
            row = self._latest(conn, app, environment, PromotionStatus.DEPLOYED)
            if row is None:
                return None
            rel = conn.execute(sa.select(releases).where(releases.c.id == row.release_id)).one()
        return records.release_from_row(rel)

    def was_deployed(self, app: str, environment: str, release_id: str) -> bool:
        """Whether this release ever reached `deployed` (verified) in the environment."""
        with self._read() as conn:
            row = conn.execute(sa.select(P.id).join(promotion_events, promotion_events.c.promotion_id == P.id)
                               .where(P.app == app, P.environment == environment, P.release_id == release_id,
                                      promotion_events.c.to_status == PromotionStatus.DEPLOYED.value)
                               .limit(1)).one_or_none()
        return row is not None

    # -- deployments ----------------------------------------------------------------------------

    def start_deployment(self, promotion_id: str, strategy: str, previous: dict[str, dict[str, str]], *,
                         actor: str = "system") -> str:
        """Record a deployment starting; `previous` is target -> component -> digest running before it."""
        now = self._clock()
        did = "dep-" + uuid.uuid4().hex
        with self._write() as conn:
            if conn.execute(sa.select(P.id).where(P.id == promotion_id)).one_or_none() is None:
                raise NotFound(f"no promotion with id {promotion_id!r}")
            conn.execute(deployments.insert().values(
                id=did, promotion_id=promotion_id, strategy=strategy, status=DeploymentStatus.RUNNING.value,
                started_at=now, finished_at=None, previous=to_jsonable(previous), error=None))
            append_audit(conn, actor, "deployment.start", f"deployment:{did}",
                         {"promotion_id": promotion_id, "strategy": strategy, "previous": _pins(previous)}, now)
        return did

    def finish_deployment(self, deployment_id: str, status: DeploymentStatus | str, error: str | None = None, *,
                          actor: str = "system") -> Deployment:
        status = DeploymentStatus(status)
        if status == DeploymentStatus.RUNNING:
            raise LedgerError("a deployment finishes as succeeded, failed, rolled_back or cancelled, not running")
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(sa.select(deployments).where(deployments.c.id == deployment_id)
                               .with_for_update()).one_or_none()
            if row is None:
                raise NotFound(f"no deployment with id {deployment_id!r}")
            if row.status != DeploymentStatus.RUNNING:
                raise LedgerError(f"deployment {deployment_id} already finished as {row.status}")
            conn.execute(deployments.update().where(deployments.c.id == deployment_id)
                         .values(status=status.value, finished_at=now, error=error))
            append_audit(conn, actor, "deployment.finish", f"deployment:{deployment_id}",
                         {"status": status.value, "error": error}, now)
        return self._deployments(sa.select(deployments).where(deployments.c.id == deployment_id))[0]

    def add_target_result(self, deployment_id: str, target: str, status: str, digests: Mapping[str, str | None],
                          timings: dict[str, int] | None = None, log: str = "",
                          sticker: VersionSticker | dict[str, Any] | None = None, *,
                          actor: str = "system") -> TargetResult:
        """Record what happened on one target; a retried task replaces its earlier result for that target."""
        now = self._clock()
        sticker_json = to_jsonable(sticker) if sticker is not None else None
        values = {"status": status, "digests": dict(digests), "timings": dict(timings or {}), "log": log,
                  "sticker": sticker_json, "recorded_at": now}
        tr = target_results.c
        with self._write() as conn:
            if conn.execute(sa.select(deployments.c.id).where(deployments.c.id == deployment_id)).one_or_none() is None:
                raise NotFound(f"no deployment with id {deployment_id!r}")
            key = (tr.deployment_id == deployment_id) & (tr.target == target)
            replaced = conn.execute(target_results.update().where(key).values(**values)).rowcount == 1
            if not replaced:
                conn.execute(target_results.insert().values(deployment_id=deployment_id, target=target, **values))
            append_audit(conn, actor, "deployment.target_result", f"deployment:{deployment_id}",
                         {"target": target, "status": status, "digests": _pins({target: digests}),
                          "replaced": replaced}, now)
            row = conn.execute(sa.select(target_results).where(key)).one()
        return records.target_result_from_row(row)

    def deployments_for(self, promotion_id: str) -> list[Deployment]:
        return self._deployments(sa.select(deployments).where(deployments.c.promotion_id == promotion_id))

    def _deployments(self, query: sa.Select[Any]) -> list[Deployment]:
        with self._read() as conn:
            rows = conn.execute(query.order_by(deployments.c.started_at, deployments.c.id)).all()
            results = conn.execute(sa.select(target_results).where(
                target_results.c.deployment_id.in_([r.id for r in rows])).order_by(target_results.c.target)).all()
        by_dep: dict[str, list[TargetResult]] = {}
        for r in results:
            by_dep.setdefault(r.deployment_id, []).append(records.target_result_from_row(r))
        return [records.deployment_from_row(r, by_dep.get(r.id, [])) for r in rows]

    # -- evidence and keys ----------------------------------------------------------------------

    def append_evidence(self, record: EvidenceRecord, promotion_id: str | None = None,
                        release_id: str | None = None, *, actor: str = "system") -> EvidenceRecord:
        """Store sealed evidence after checking it against the ledger's registered keys (a sanity check
        that it is well-formed and signed by the key it names, not a statement of trust: see
        `registered_keys`). Storing the same evidence (same id) again changes nothing."""
        with self._write() as conn:
            self._append_evidence_in(conn, record, promotion_id, release_id, actor)
        return record

    def _append_evidence_in(self, conn: sa.Connection, record: EvidenceRecord, promotion_id: str | None,
                            release_id: str | None, actor: str) -> None:
        """`append_evidence` inside the caller's transaction (e.g. with the approval it seals)."""
        check = verify_evidence(record, self._registered(conn))
        if not check.ok:
            raise LedgerError(f"evidence {record.id} refused: {check.reason}")
        if conn.execute(sa.select(evidence.c.id).where(evidence.c.id == record.id)).one_or_none() is not None:
            return
        try:
            conn.execute(evidence.insert().values(
                id=record.id, type=record.type.value, subjects=[s.model_dump() for s in record.subjects],
                envelope=record.envelope, key_id=record.key_id, created_at=record.created_at,
                promotion_id=promotion_id, release_id=release_id))
        except IntegrityError as exc:
            raise LedgerError(f"evidence {record.id} could not be stored: {exc.orig}") from None
        append_audit(conn, actor, "evidence.append", f"evidence:{record.id}",
                     {"type": record.type.value, "key_id": record.key_id, "promotion_id": promotion_id,
                      "release_id": release_id}, self._clock())

    def get_evidence(self, evidence_id: str) -> EvidenceRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(evidence).where(evidence.c.id == evidence_id)).one_or_none()
        if row is None:
            raise NotFound(f"no evidence with id {evidence_id!r}")
        return records.evidence_from_row(row)

    def evidence_for(self, promotion_id: str | None = None, release_id: str | None = None, *,
                     release_only: bool = False) -> list[EvidenceRecord]:
        """Records of a promotion and/or a release, oldest first; `release_only`: only the release's
        own records (its seal), not those of its promotions."""
        if promotion_id is None and release_id is None:
            raise ValueError("evidence_for needs a promotion_id or a release_id")
        query = sa.select(evidence).order_by(evidence.c.created_at, evidence.c.id)
        if release_only:
            query = query.where(evidence.c.promotion_id.is_(None))
        if promotion_id is not None:
            query = query.where(evidence.c.promotion_id == promotion_id)
        if release_id is not None:
            query = query.where(evidence.c.release_id == release_id)
        with self._read() as conn:
            return [records.evidence_from_row(r) for r in conn.execute(query)]

    def register_key(self, key_id: str, public_pem: bytes | str, *, actor: str = "system") -> str:
        """Register the public key of a signing key, so that its records can be stored. Idempotent; a key
        id can never be re-pointed. Registering a key does not make it trusted (see `registered_keys`)."""
        pem = public_pem.decode("ascii") if isinstance(public_pem, bytes) else public_pem
        actual = key_id_for(load_public_pem(pem))
        if actual != key_id:
            raise LedgerError(f"key id {key_id} does not match the public key (its id is {actual})")
        with self._write() as conn:
            known = conn.execute(sa.select(signing_keys.c.public_pem)
                                 .where(signing_keys.c.key_id == key_id)).scalar_one_or_none()
            if known is not None:
                return key_id  # same id => same raw public key (the id is derived from it)
            now = self._clock()
            conn.execute(signing_keys.insert().values(key_id=key_id, public_pem=pem, created_at=now))
            append_audit(conn, actor, "key.register", f"key:{key_id}", {"key_id": key_id}, now)
        return key_id

    def _registered(self, conn: sa.Connection) -> TrustedKeys:
        registered = TrustedKeys()
        for row in conn.execute(sa.select(signing_keys)):
            registered.add(row.public_pem, key_id=row.key_id)
        return registered

    def public_key_pems(self, key_ids: set[str]) -> dict[str, str]:
        """The registered public keys (PEM) of `key_ids` (for bundles; not a statement of trust)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(signing_keys.c.key_id, signing_keys.c.public_pem)
                                .where(signing_keys.c.key_id.in_(sorted(key_ids)))).all()
        return {r.key_id: r.public_pem for r in rows}

    def registered_keys(self) -> TrustedKeys:
        """Every key that ever signed a stored record. NOT a trust root: any key registers itself on
        first use, so verification trusts only a configured trust store (evidence/trust.py); these
        are used only by `stella evidence verify --trust-ledger-keys`, with a warning."""
        with self._read() as conn:
            return self._registered(conn)

    # -- audit ----------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> AuditEvent:
        """Record an event that is not a ledger mutation (e.g. a task marked success by hand in Airflow)."""
        with self._write() as conn:
            return append_audit(conn, actor, action, subject, detail, self._clock())

    def audit_events(self, subject: str | None = None) -> list[AuditEvent]:
        with self._read() as conn:
            return list_audit(conn, subject)

    def verify_audit_chain(self) -> tuple[bool, int | None]:
        with self._read() as conn:
            return verify_chain(conn)


if TYPE_CHECKING:  # mypy proves the Ledger fulfils every concept's Protocol (ledger/protocols.py)
    from stella_operators.ledger.protocols import FullLedger

    def _is_a_full_ledger(ledger: Ledger) -> FullLedger:
        return ledger
