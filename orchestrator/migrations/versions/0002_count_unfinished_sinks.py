"""an instance counts its unfinished sink nodes, not all its unfinished nodes

Only a sink's completion touches the instance row now (docs/BENCHMARKS.md). Instances that have not
ended get their count recomputed from their definition and node rows, in both directions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:30:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ENDED = ("completed", "failed", "cancelled")
_DONE = ("completed", "skipped")

instances = sa.table(
    "workflow_instances",
    sa.column("id", sa.String),
    sa.column("definition_id", sa.Integer),
    sa.column("status", sa.String),
)
definitions = sa.table("workflow_definitions", sa.column("id", sa.Integer), sa.column("body", sa.JSON))
nodes = sa.table(
    "node_executions",
    sa.column("instance_id", sa.String),
    sa.column("node_id", sa.String),
    sa.column("status", sa.String),
)


def _sinks(body: Any) -> list[str]:
    # from the stored body as posted (not the application's parser, which may change after this)
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    spec = body.get("nodes", [])
    depended_on = {dep for node in spec for dep in node.get("dependsOn") or ()}
    return [node["id"] for node in spec if node["id"] not in depended_on]


def _recount(column: str, only_sinks: bool) -> None:
    conn = op.get_bind()
    open_instances = conn.execute(
        sa.select(instances.c.id, definitions.c.body)
        .join(definitions, definitions.c.id == instances.c.definition_id)
        .where(instances.c.status.not_in(_ENDED))
    ).all()
    target = sa.table("workflow_instances", sa.column("id", sa.String), sa.column(column, sa.Integer))
    for instance_id, body in open_instances:
        counted = sa.select(sa.func.count()).where(
            nodes.c.instance_id == instance_id, nodes.c.status.not_in(_DONE)
        )
        if only_sinks:
            counted = counted.where(nodes.c.node_id.in_(_sinks(body)))
        left = conn.execute(counted).scalar_one()
        conn.execute(sa.update(target).where(target.c.id == instance_id).values({column: left}))


def _rename(old: str, new: str) -> None:
    with op.batch_alter_table("workflow_instances") as batch_op:
        batch_op.alter_column(old, new_column_name=new, existing_type=sa.Integer(), existing_nullable=False)


def upgrade() -> None:
    _rename("unfinished_nodes", "unfinished_sinks")
    _recount("unfinished_sinks", only_sinks=True)


def downgrade() -> None:
    _rename("unfinished_sinks", "unfinished_nodes")
    _recount("unfinished_nodes", only_sinks=False)
