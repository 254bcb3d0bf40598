"""The ledger's tables (SQLAlchemy Core). The schema itself is created by the migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# JSONB on PostgreSQL: it has equality, which the immutability triggers need.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
# 64-bit sequence numbers on PostgreSQL; SQLite's AUTOINCREMENT needs exactly INTEGER.
SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Tables whose rows the database refuses to UPDATE or DELETE.
APPEND_ONLY_TABLES = ("evidence", "audit_events", "promotion_events", "signing_keys", "approvals", "gate_verdicts")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware datetimes in, UTC-aware datetimes out, on every backend (SQLite has no zones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(name: str = "id", **kw: Any) -> sa.Column[str]:
    return sa.Column(name, sa.String(128), primary_key=True, **kw)


releases = sa.Table(
    "releases", metadata,
    _id(),
    sa.Column("app", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("content_hash", sa.String(71), nullable=False),
    sa.Column("components", JSONType, nullable=False),
    sa.Column("source", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.UniqueConstraint("app", "name", name="uq_releases_app_name"),
)

promotions = sa.Table(
    "promotions", metadata,
    _id(),
    sa.Column("app", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("release_id", sa.String(128), sa.ForeignKey("releases.id", name="fk_promotions_release"),
              nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("requested_by", sa.String(256), nullable=False),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("airflow_dag_id", sa.String(250), nullable=True),
    sa.Column("airflow_run_id", sa.String(250), nullable=True),
    sa.Column("decision", JSONType, nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("airflow_dag_id", "airflow_run_id", name="uq_promotions_airflow_run"),
    sa.Index("ix_promotions_app_environment", "app", "environment"),
    sa.Index("ix_promotions_status", "status"),  # 0002: pending approvals and friends
)

promotion_events = sa.Table(
    "promotion_events", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_promotion_events_promotion"),
              nullable=False),
    sa.Column("from_status", sa.String(32), nullable=True),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("detail", JSONType, nullable=True),
    sa.Index("ix_promotion_events_promotion", "promotion_id", "to_status"),
    sqlite_autoincrement=True,
)

deployments = sa.Table(
    "deployments", metadata,
    _id(),
    sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_deployments_promotion"),
              nullable=False, index=True),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("previous", JSONType, nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
)

target_results = sa.Table(
    "target_results", metadata,
    sa.Column("deployment_id", sa.String(128), sa.ForeignKey("deployments.id", name="fk_target_results_deployment"),
              primary_key=True),
    sa.Column("target", sa.String(256), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("digests", JSONType, nullable=False),
    sa.Column("timings", JSONType, nullable=False),
    sa.Column("log", sa.Text(), nullable=False),
    sa.Column("sticker", JSONType, nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

evidence = sa.Table(
    "evidence", metadata,
    sa.Column("id", sa.String(71), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("subjects", JSONType, nullable=False),
    sa.Column("envelope", JSONType, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_evidence_promotion"),
              nullable=True, index=True),
    sa.Column("release_id", sa.String(128), sa.ForeignKey("releases.id", name="fk_evidence_release"),
              nullable=True, index=True),
)

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("detail", JSONType, nullable=False),
    # Unique previous_hash: two writers that raced for the same chain tail cannot both commit.
    sa.Column("previous_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sqlite_autoincrement=True,
)

signing_keys = sa.Table(
    "signing_keys", metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("public_pem", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


# -- 0002: approvals, gate verdicts (its environment_locks became 0003's deploy_locks) -----------------

# Every approval attempt, counted or refused, kept forever (append-only).
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_approvals_promotion"),
              nullable=False, index=True),
    sa.Column("approver", sa.String(256), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("content_hash", sa.String(71), nullable=False),  # the release content hash the approver was shown
    sa.Column("counted", sa.Boolean(), nullable=False),
    sa.Column("refusal", sa.String(128), nullable=True),  # stable reason code when the attempt was refused
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("evidence_id", sa.String(71), sa.ForeignKey("evidence.id", name="fk_approvals_evidence"),
              nullable=True),
    # 0004: the live deployment plan's hash the attempt was given against (None: before 0004)
    sa.Column("plan_hash", sa.String(71), nullable=True),
    sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_approvals_decision"),
    # Counted exactly when not refused.
    sa.CheckConstraint("(counted AND refusal IS NULL) OR (NOT counted AND refusal IS NOT NULL)",
                       name="ck_approvals_counted_xor_refused"),
    # One person counts once per decision, even when two requests race past the application's check.
    sa.Index("uq_approvals_counted_once", "promotion_id", "approver", "decision", unique=True,
             sqlite_where=sa.text("counted"), postgresql_where=sa.text("counted")),
    sqlite_autoincrement=True,
)

# Every gate verdict with the inputs it was decided from (append-only; replayable).
gate_verdicts = sa.Table(
    "gate_verdicts", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_gate_verdicts_promotion"),
              nullable=False, index=True),
    sa.Column("gate_type", sa.String(64), nullable=False),
    sa.Column("gate_name", sa.String(128), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("reasons", JSONType, nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("remedy", sa.Text(), nullable=False),
    sa.Column("details", JSONType, nullable=False),
    sa.Column("inputs", JSONType, nullable=False),
    sa.Column("inputs_hash", sa.String(71), nullable=False),
    sa.Column("evaluated_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# -- 0003: deploy locks per (app, environment), with a lease --------------------------------------

# Mutable: one row per held lock; `app` is "*" for an environment-wide lock. The primary key makes
# taking one atomic; `expires_at` is the lease the holder renews (a stale lock is taken over).
deploy_locks = sa.Table(
    "deploy_locks", metadata,
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("app", sa.String(128), primary_key=True),
    sa.Column("promotion_id", sa.String(128),
              sa.ForeignKey("promotions.id", name="fk_deploy_locks_promotion"), nullable=False, index=True),
    sa.Column("holder", sa.Text(), nullable=False),  # who holds it, e.g. "<dag_id>/<run_id>"
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The integer primary key an INSERT of one row generated (the ledger's `seq` columns)."""
    pk = result.inserted_primary_key
    if pk is None:  # only for statements that are not a single-row INSERT: a programming error
        raise TypeError("not a single-row INSERT")
    return int(pk[0])
