"""Approval attempts carry the hash of the deployment plan they were given against.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The plan itself (per target: current -> new digest, start / replace / keep) is sealed in the
approval's evidence; the hash on the attempt row lets the deployment compare without opening it.
Attempts recorded before this revision have none (NULL): they were approved without a plan.
Adding a nullable column leaves the append-only triggers of 0002 as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("plan_hash", sa.String(71), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch copy would lose 0002's triggers.
    op.execute("ALTER TABLE approvals DROP COLUMN plan_hash")
