"""Deploy locks per (app, environment) with a lease, replacing the per-environment locks of 0002.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Locks held at upgrade time are carried over as app-scoped locks of their promotion's app, with a
lease that ends at once: if their deployment still runs it renews the lease with its next
heartbeat; if it died, the next promotion takes the lock over and recovers it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deploy_locks",
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("app", sa.String(128), primary_key=True),
        sa.Column("promotion_id", sa.String(128),
                  sa.ForeignKey("promotions.id", name="fk_deploy_locks_promotion"), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_deploy_locks_promotion_id", "deploy_locks", ["promotion_id"])
    op.execute(
        "INSERT INTO deploy_locks (environment, app, promotion_id, holder, acquired_at, heartbeat_at, expires_at) "
        "SELECT l.environment, p.app, l.promotion_id, l.holder, l.acquired_at, l.acquired_at, l.acquired_at "
        "FROM environment_locks l JOIN promotions p ON p.id = l.promotion_id")
    op.drop_table("environment_locks")


def downgrade() -> None:
    op.create_table(
        "environment_locks",
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("promotion_id", sa.String(128),
                  sa.ForeignKey("promotions.id", name="fk_environment_locks_promotion"), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
    )
    op.create_index("ix_environment_locks_promotion_id", "environment_locks", ["promotion_id"])
    # One lock per environment survives (the oldest); the others' deployments hold no lock then.
    op.execute(
        "INSERT INTO environment_locks (environment, promotion_id, acquired_at, holder) "
        "SELECT d.environment, d.promotion_id, d.acquired_at, d.holder FROM deploy_locks d "
        "WHERE NOT EXISTS (SELECT 1 FROM deploy_locks o WHERE o.environment = d.environment "
        "AND (o.acquired_at < d.acquired_at OR (o.acquired_at = d.acquired_at AND o.app < d.app)))")
    op.drop_table("deploy_locks")
