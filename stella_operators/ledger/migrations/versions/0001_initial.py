"""The ledger's first schema, with the database-enforced append-only and sealed-release rules.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
APPEND_ONLY = ("evidence", "audit_events", "promotion_events", "signing_keys")

# A sealed (or later deprecated/archived) release keeps its identity and digests forever;
# only its state may move on, and never back to draft.
_RELEASE_FROZEN_SQLITE = " OR ".join(
    f"NEW.{c} IS NOT OLD.{c}"
    for c in ("id", "app", "name", "components", "content_hash", "source", "created_at", "created_by"))
_RELEASE_FROZEN_PG = " OR ".join(
    f"NEW.{c} IS DISTINCT FROM OLD.{c}"
    for c in ("id", "app", "name", "components", "content_hash", "source", "created_at", "created_by"))


def _tables() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(71), nullable=False),
        sa.Column("components", JSON, nullable=False),
        sa.Column("source", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.UniqueConstraint("app", "name", name="uq_releases_app_name"),
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("release_id", sa.String(128), sa.ForeignKey("releases.id", name="fk_promotions_release"),
                  nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("airflow_dag_id", sa.String(250), nullable=True),
        sa.Column("airflow_run_id", sa.String(250), nullable=True),
        sa.Column("decision", JSON, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("airflow_dag_id", "airflow_run_id", name="uq_promotions_airflow_run"),
    )
    op.create_index("ix_promotions_app_environment", "promotions", ["app", "environment"])
    op.create_table(
        "promotion_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("promotion_id", sa.String(128),
                  sa.ForeignKey("promotions.id", name="fk_promotion_events_promotion"), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("detail", JSON, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_promotion_events_promotion", "promotion_events", ["promotion_id", "to_status"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_deployments_promotion"),
                  nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("previous", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_deployments_promotion_id", "deployments", ["promotion_id"])
    op.create_table(
        "target_results",
        sa.Column("deployment_id", sa.String(128),
                  sa.ForeignKey("deployments.id", name="fk_target_results_deployment"), primary_key=True),
        sa.Column("target", sa.String(256), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("digests", JSON, nullable=False),
        sa.Column("timings", JSON, nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("sticker", JSON, nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.String(71), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("subjects", JSON, nullable=False),
        sa.Column("envelope", JSON, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_evidence_promotion"),
                  nullable=True),
        sa.Column("release_id", sa.String(128), sa.ForeignKey("releases.id", name="fk_evidence_release"),
                  nullable=True),
    )
    op.create_index("ix_evidence_promotion_id", "evidence", ["promotion_id"])
    op.create_index("ix_evidence_release_id", "evidence", ["release_id"])
    op.create_table(
        "audit_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def _sqlite_guards() -> None:
    for table in APPEND_ONLY:
        for op_name in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'append-only: {op_name} on {table} is not allowed'); END")
    op.execute(
        "CREATE TRIGGER releases_sealed_no_update BEFORE UPDATE ON releases "
        f"WHEN OLD.state <> 'draft' AND (NEW.state = 'draft' OR {_RELEASE_FROZEN_SQLITE}) "
        "BEGIN SELECT RAISE(ABORT, 'sealed release is immutable: only its state may move on'); END")
    op.execute(
        "CREATE TRIGGER releases_sealed_no_delete BEFORE DELETE ON releases WHEN OLD.state <> 'draft' "
        "BEGIN SELECT RAISE(ABORT, 'sealed release is immutable: it cannot be deleted'); END")


def _postgres_guards() -> None:
    op.execute("""
        CREATE FUNCTION stella_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME;
        END $$""")
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION stella_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION stella_append_only()")
    op.execute(f"""
        CREATE FUNCTION stella_release_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                IF OLD.state <> 'draft' THEN
                    RAISE EXCEPTION 'sealed release is immutable: % cannot be deleted', OLD.id;
                END IF;
                RETURN OLD;
            END IF;
            IF OLD.state <> 'draft' AND (NEW.state = 'draft' OR {_RELEASE_FROZEN_PG}) THEN
                RAISE EXCEPTION 'sealed release is immutable: only the state of % may move on', OLD.id;
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER releases_sealed BEFORE UPDATE OR DELETE ON releases "
               "FOR EACH ROW EXECUTE FUNCTION stella_release_sealed()")
    op.execute("CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases "
               "FOR EACH STATEMENT EXECUTE FUNCTION stella_append_only()")


def upgrade() -> None:
    _tables()
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_guards()
    elif dialect == "postgresql":
        _postgres_guards()
    else:
        raise NotImplementedError(f"the ledger enforces append-only rules on sqlite and postgresql, not {dialect}")


def downgrade() -> None:
    for table in ("signing_keys", "audit_events", "evidence", "target_results", "deployments",
                  "promotion_events", "promotions", "releases"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stella_append_only()")
        op.execute("DROP FUNCTION IF EXISTS stella_release_sealed()")
