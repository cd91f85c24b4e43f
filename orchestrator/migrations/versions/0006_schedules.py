"""cron schedules

A `schedules` table: each row starts instances of a workflow at the fire times of its cron
expression (orchestrator/schedules.py, orchestrator/schedule_firing.py). Nothing else changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)
JSON = sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=128), primary_key=True),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("cron", sa.String(length=255), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("input", JSON, nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("catchup", sa.String(length=8), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", TIMESTAMP, nullable=True),
        sa.Column("last_fire_at", TIMESTAMP, nullable=True),
        sa.Column("last_instance_id", sa.String(length=36), nullable=True),
        sa.Column("skipped_fires", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_schedules_paused_next", "schedules", ["paused", "next_fire_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_schedules_paused_next", table_name="schedules")
    op.drop_table("schedules")
