"""concurrency and rate limits

A node's admission under a limit (`admitted_attempt`, `limit_wait`), an instance's concurrency key and
its limit, and a `limits` table: the row each limit's admissions lock, and a rate's bucket
(orchestrator/admission.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)


def upgrade() -> None:
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.add_column(sa.Column("admitted_attempt", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("limit_wait", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_nodes_executor_status", ["executor", "status"], unique=False)
        batch_op.create_index("ix_nodes_status_limit", ["status", "limit_wait"], unique=False)
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.add_column(sa.Column("concurrency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))
        batch_op.create_index("ix_instances_key_status", ["concurrency_key", "status"], unique=False)
    op.create_table(
        "limits",
        sa.Column("kind", sa.String(length=16), primary_key=True),
        sa.Column("name", sa.String(length=255), primary_key=True),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("tat", sa.Double(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limits")
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.drop_index("ix_instances_key_status")
        batch_op.drop_column("concurrency_limit")
        batch_op.drop_column("concurrency_key")
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.drop_index("ix_nodes_status_limit")
        batch_op.drop_index("ix_nodes_executor_status")
        batch_op.drop_column("limit_wait")
        batch_op.drop_column("admitted_attempt")
