"""node types of their own (map, wait, sleep), delayed starts and signals

Node rows gain their type (before, a row's type was read off its executor: a task's row names one,
a sub-workflow node's does not, and that is how existing rows are filled in), a map's item columns and
counters, and a wake-up time for nodes that wait (sleep, a wait's timeout). Instances gain `start_at`
(`startAt` of the create). Signals get a table. Running instances of the old shape hold only task and
sub-workflow nodes, which read the same after the upgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIMESTAMP = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)
JSON = sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.add_column(sa.Column("type", sa.String(length=16), nullable=False, server_default="task"))
        batch_op.add_column(sa.Column("map_node_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("item_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("item", JSON, nullable=True))
        batch_op.add_column(sa.Column("items_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("items_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("wake_at", TIMESTAMP, nullable=True))
        batch_op.create_index("ix_nodes_status_wake", ["status", "wake_at"], unique=False)
        batch_op.create_index(
            "ix_nodes_map_items", ["instance_id", "map_node_id", "status", "item_index"], unique=False
        )
    op.execute("UPDATE node_executions SET type = 'subworkflow' WHERE executor IS NULL")
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.add_column(sa.Column("start_at", TIMESTAMP, nullable=True))
        batch_op.create_index("ix_instances_status_start", ["status", "start_at"], unique=False)
    op.create_table(
        "instance_signals",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "instance_id",
            sa.String(length=36),
            sa.ForeignKey("workflow_instances.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("consumed_at", TIMESTAMP, nullable=True),
        sa.Column("node_id", sa.String(length=128), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
    )
    op.create_index("ix_signals_instance_name", "instance_signals", ["instance_id", "name"], unique=False)


def downgrade() -> None:
    op.drop_table("instance_signals")  # its index goes with it (MySQL keeps it for the foreign key)
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.drop_index("ix_instances_status_start")
        batch_op.drop_column("start_at")
    with op.batch_alter_table("node_executions") as batch_op:
        batch_op.drop_index("ix_nodes_map_items")
        batch_op.drop_index("ix_nodes_status_wake")
        for column in ("wake_at", "items_left", "items_total", "item", "item_index", "map_node_id", "type"):
            batch_op.drop_column(column)
