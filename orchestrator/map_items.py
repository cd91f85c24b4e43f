"""A map node's items: the rows of one run of a map, written and counted in the node path's transactions.

An item is a node row of its own (node id `<map>[<index>]`, its body's type, `map_node_id`,
`item_index`, `item`): claimed, run, retried, checkpointed and recovered like any node. What differs
is its end: an item releases no successor of the definition. The transaction that ends it
(`completion.py`) locks the map's row, counts the map's `items_left` down, queues the next pending
item when `maxConcurrency` holds items back, and, once `items_left` reaches 0, completes the map with
every item's output; the map's own completion then releases its successors once, as any node's does.

Lock order: the item's row, then its map's row, then (only when the map ends) what the end of a node
locks. Other item rows are locked only while the map row is held, so concurrent finishers of one
map's items queue on the map row and never wait for each other's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, select, update

from orchestrator import scheduling, storable
from orchestrator.definitions import item_of
from orchestrator.errors import NotStorable
from orchestrator.models import CheckpointRow, NodeRow
from orchestrator.outcomes import QueuedNode
from orchestrator.states import NodeStatus as N
from orchestrator.transitions import move_nodes


class MapHead(NamedTuple):
    """A map node's row as its items' ends read it (locked)."""

    id: int
    node_id: str
    status: str
    attempt: int
    items_left: int | None
    worker_id: str | None

    @property
    def counting(self) -> bool:
        """Whether its run counts items: it runs and has started its items."""
        return self.status == N.RUNNING.value and self.items_left is not None


_MAP = (
    select(
        NodeRow.id,
        NodeRow.node_id,
        NodeRow.status,
        NodeRow.attempt,
        NodeRow.items_left,
        NodeRow.worker_id,
    )
    .where(NodeRow.instance_id == bindparam("instance_id"), NodeRow.node_id == bindparam("node_id"))
    .with_for_update()
)
# the common end of an item: its map runs and other items are left; the row count says so
_COUNTED = (
    update(NodeRow)
    .where(
        NodeRow.instance_id == bindparam("b_instance"),
        NodeRow.node_id == bindparam("b_map"),
        NodeRow.status == N.RUNNING.value,
        NodeRow.items_left > 1,
    )
    .values(items_left=NodeRow.items_left - 1, updated_at=bindparam("b_now"))
)
_ITEMS = (NodeRow.instance_id == bindparam("instance_id"), NodeRow.map_node_id == bindparam("map_id"))
_NEXT = select(NodeRow.id).where(*_ITEMS, NodeRow.status == N.PENDING.value).order_by(NodeRow.item_index)
_COUNT_DOWN = (
    update(NodeRow)
    .where(NodeRow.id == bindparam("b_row"))
    .values(items_left=NodeRow.items_left - 1, updated_at=bindparam("b_now"))
)


def map_of(node_id: str) -> str | None:
    """The map node id of an item's node id; None for any other node (a string test first: the node
    path asks this of every node)."""
    if "[" not in node_id:
        return None
    found = item_of(node_id)
    return None if found is None else found[0]


def count_down_running(conn: Connection, instance_id: str, map_id: str, now: datetime) -> bool:
    """Count one item of a running map ended when it is not the last one; whether it was (the map's
    row is then locked, as `lock_map` would)."""
    params = {"b_instance": instance_id, "b_map": map_id, "b_now": now}
    return conn.execute(_COUNTED, params).rowcount == 1


def lock_map(conn: Connection, instance_id: str, map_id: str) -> MapHead:
    row = conn.execute(_MAP, {"instance_id": instance_id, "node_id": map_id}).one()
    return MapHead._make(row)


def count_down(conn: Connection, head: MapHead, now: datetime) -> int:
    """One item of the map's run ended; returns how many are left."""
    conn.execute(_COUNT_DOWN, {"b_row": head.id, "b_now": now})
    return int(head.items_left or 0) - 1


def queue_next(
    conn: Connection, instance_id: str, map_id: str, count: int | None, now: datetime
) -> list[QueuedNode]:
    """Queue the `count` (None: all) pending items of lowest index; returns them as queued. Call it
    with the map row locked."""
    if count is not None and count <= 0:
        return []
    statement = _NEXT if count is None else _NEXT.limit(count)
    ids = list(conn.execute(statement, {"instance_id": instance_id, "map_id": map_id}).scalars())
    if not ids:
        return []
    move_nodes(
        conn,
        N.QUEUED,
        NodeRow.id.in_(ids),
        sources=[N.PENDING],
        attempt=NodeRow.attempt + 1,
        queued_at=now,
        not_before=None,
    )
    return scheduling.queued_rows(conn, instance_id, NodeRow.id.in_(ids))


def queued_items(conn: Connection, instance_id: str, map_id: str) -> list[QueuedNode]:
    return scheduling.queued_rows(conn, instance_id, NodeRow.map_node_id == map_id)


def output(conn: Connection, instance_id: str, map_id: str) -> dict[str, Any]:
    """The map's output: each item's output in index order (None for one that did not complete), and
    the indices of the failed ones. Raises NotStorable when the items' outputs add up to more than
    the store holds, from their sizes as the store counts them, before any output is read: 10,000
    outputs are not loaded (under the map's lock) only to be refused."""
    size = conn.execute(
        select(func.sum(func.length(NodeRow.output))).where(
            NodeRow.instance_id == instance_id,
            NodeRow.map_node_id == map_id,
            NodeRow.status == N.COMPLETED.value,
        )
    ).scalar()
    if size is not None and int(size) > storable.MAX_BYTES:
        raise NotStorable(
            f"the output of the map cannot be stored: its items' outputs add up to {int(size)} bytes,"
            f" more than {storable.MAX_BYTES // (1024 * 1024)} MiB"
        )
    rows = conn.execute(
        select(NodeRow.item_index, NodeRow.status, NodeRow.output)
        .where(NodeRow.instance_id == instance_id, NodeRow.map_node_id == map_id)
        .order_by(NodeRow.item_index)
    ).all()
    return {
        "items": [r.output if r.status == N.COMPLETED.value else None for r in rows],
        "failed": [r.item_index for r in rows if r.status == N.FAILED.value],
    }


def item_rows(conn: Connection, instance_id: str, map_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(NodeRow.id, NodeRow.status, NodeRow.error).where(
                NodeRow.instance_id == instance_id, NodeRow.map_node_id == map_id
            )
        ).all()
    )


def drop_items(conn: Connection, instance_id: str, map_ids: list[str]) -> None:
    """Delete the items (and their checkpoints) of these maps: their next run starts from `over`."""
    if not map_ids:
        return
    of_maps = (NodeRow.instance_id == instance_id, NodeRow.map_node_id.in_(map_ids))
    item_ids = select(NodeRow.node_id).where(*of_maps).scalar_subquery()
    conn.execute(
        delete(CheckpointRow).where(
            CheckpointRow.instance_id == instance_id, CheckpointRow.node_id.in_(item_ids)
        )
    )
    conn.execute(delete(NodeRow).where(*of_maps))
