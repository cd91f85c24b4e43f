"""`POST /api/v1/instances/<id>/signals/<name>`: a signal (any JSON body) for the instance's wait node.

202: `{"instanceId", "signal", "delivered", "nodeId"}`: delivered, the waiting node completed with the
body as its output; not delivered, the signal is stored until the node is reached. 404 for an unknown
instance or a signal no wait node of it waits for (naming `name`); 409 for an instance that has ended,
a node already done, or a signal of that name already stored and not consumed.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import engine
from api.requests import json_body
from orchestrator import signals
from workers.tasks import follow_up

bp = Blueprint("signals", __name__, url_prefix="/api/v1/instances")


@bp.post("/<instance_id>/signals/<name>")
def send(instance_id: str, name: str) -> tuple[Response, int]:
    """An empty body sends `null`."""
    payload = json_body(required=False)
    delivery = signals.send(engine(), instance_id, name, payload)
    follow_up(delivery.outcome)
    body = {
        "instanceId": delivery.instance_id,
        "signal": delivery.signal,
        "delivered": delivery.delivered,
        "nodeId": delivery.node_id,
    }
    return jsonify(body), 202
