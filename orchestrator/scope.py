"""The names a node's templates see when one of its attempts runs: `nodes`, and as the templates
need them `input`, `instance`, and a map item's `item` and `index`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from orchestrator import scheduling
from orchestrator.definitions import NodeSpec
from orchestrator.outcomes import Claim


def node_scope(
    engine: Engine, held: Claim, spec: NodeSpec
) -> tuple[dict[str, Any], tuple[dict[str, Any], str | None] | None]:
    """The scope of the attempt `held` of node `spec`, and the instance's (input, externalId) when
    the templates read them (None: not read)."""
    scope: dict[str, Any] = {"nodes": {node: {"output": out} for node, out in held.outputs.items()}}
    instance: tuple[dict[str, Any], str | None] | None = None
    if spec.reads_instance:
        instance = scheduling.instance_data(engine, held.instance_id)
        scope["input"] = instance[0]
        scope["instance"] = {"id": held.instance_id, "externalId": instance[1]}
    if held.map_item is not None:
        scope["item"] = held.map_item.value
        scope["index"] = held.map_item.index
    return scope, instance
