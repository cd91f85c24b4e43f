"""executor limits set through the API

A `limit_overrides` table: an executor's concurrency and rate as set by `PUT /api/v1/limits/<name>`,
each field on its own (`*_set`), winning over `ORCH_LIMITS` and the code
(orchestrator/limit_overrides.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)


def upgrade() -> None:
    op.create_table(
        "limit_overrides",
        sa.Column("executor", sa.String(length=255), primary_key=True),
        sa.Column("concurrency_set", sa.Boolean(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("rate_set", sa.Boolean(), nullable=False),
        sa.Column("rate", sa.String(length=32), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limit_overrides")
