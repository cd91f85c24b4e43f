"""callback deliveries are stored: state, attempts made, and when the next is due at the latest

Before, a callback lived only in broker messages (the first one and its retries); a message lost with
the broker, or a retry held by a worker that was killed, meant no callback. Instances that had ended
before this revision are left with no stored delivery (state NULL); a `notify` message of the older
version still on its way takes such an instance over (`callbacks.take_attempt`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)


def upgrade() -> None:
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.add_column(sa.Column("callback_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("callback_due_at", TIMESTAMP, nullable=True))
        batch_op.create_index("ix_instances_callback_due", ["callback_state", "callback_due_at"])


def downgrade() -> None:
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.drop_index("ix_instances_callback_due")
        batch_op.drop_column("callback_due_at")
        batch_op.drop_column("callback_attempts")
        batch_op.drop_column("callback_state")
