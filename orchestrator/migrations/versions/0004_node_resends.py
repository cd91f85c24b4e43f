"""queued nodes record the copies of their message the recovery sweep sent, and when

Before, the sweep resent every queued node that had waited a heartbeat timeout, so a queue that took
longer than that to drain was sent again and again, and grew instead of draining. The sweep now
resends a node only while nothing waits on its queue, and each copy is recorded on the row: a node
gets its next copy no sooner than one window after the last one, doubled for every copy already
sent (orchestrator/resends.py, docs/recovery.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)


def upgrade() -> None:
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.add_column(sa.Column("resent_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.drop_column("resends")
        batch_op.drop_column("resent_at")
