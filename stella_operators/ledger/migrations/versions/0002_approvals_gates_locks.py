"""Approvals and gate verdicts (append-only, database-enforced) and per-environment locks.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
APPEND_ONLY = ("approvals", "gate_verdicts")


def _tables() -> None:
    op.create_index("ix_promotions_status", "promotions", ["status"])
    op.create_table(
        "approvals",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("promotion_id", sa.String(128), sa.ForeignKey("promotions.id", name="fk_approvals_promotion"),
                  nullable=False),
        sa.Column("approver", sa.String(256), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(71), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("refusal", sa.String(128), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("evidence_id", sa.String(71), sa.ForeignKey("evidence.id", name="fk_approvals_evidence"),
                  nullable=True),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_approvals_decision"),
        sa.CheckConstraint("(counted AND refusal IS NULL) OR (NOT counted AND refusal IS NOT NULL)",
                           name="ck_approvals_counted_xor_refused"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_approvals_promotion_id", "approvals", ["promotion_id"])
    op.create_index("uq_approvals_counted_once", "approvals", ["promotion_id", "approver", "decision"], unique=True,
                    sqlite_where=sa.text("counted"), postgresql_where=sa.text("counted"))
    op.create_table(
        "gate_verdicts",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("promotion_id", sa.String(128),
                  sa.ForeignKey("promotions.id", name="fk_gate_verdicts_promotion"), nullable=False),
        sa.Column("gate_type", sa.String(64), nullable=False),
        sa.Column("gate_name", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("remedy", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("inputs", JSON, nullable=False),
        sa.Column("inputs_hash", sa.String(71), nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_gate_verdicts_promotion_id", "gate_verdicts", ["promotion_id"])
    op.create_table(
        "environment_locks",
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("promotion_id", sa.String(128),
                  sa.ForeignKey("promotions.id", name="fk_environment_locks_promotion"), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
    )
    op.create_index("ix_environment_locks_promotion_id", "environment_locks", ["promotion_id"])


def _sqlite_guards() -> None:
    # Same trigger names and messages as 0001's append-only tables.
    for table in APPEND_ONLY:
        for op_name in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'append-only: {op_name} on {table} is not allowed'); END")


def _postgres_guards() -> None:
    # stella_append_only() was created by 0001.
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION stella_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
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
    # Dropping a table drops its triggers (on both backends).
    for table in ("environment_locks", "gate_verdicts", "approvals"):
        op.drop_table(table)
    op.drop_index("ix_promotions_status", table_name="promotions")
