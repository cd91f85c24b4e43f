"""`/ui/`: a browser view of instances: the list, and one instance's DAG coloured by node state, live.

The pages are static HTML and JavaScript (no build step, nothing from a CDN) that read the JSON API:
the definition for the graph, `/events` (Server-Sent Events) for live changes, and `/nodes` and
`/status` by polling when the event stream is not available. They hold no data themselves, so they
are served without a token; with `ORCH_API_TOKENS` set, open them with `?token=<token>` and the
scripts send it as a bearer token to the API (and poll, since EventSource cannot send headers).
"""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint(
    "ui",
    __name__,
    url_prefix="/ui",
    static_folder="static/ui",
    static_url_path="/static",
    template_folder="templates",
)


@bp.get("/")
def instance_list() -> str:
    return render_template("ui/instances.html")


@bp.get("/instances/<instance_id>")
def instance_page(instance_id: str) -> str:
    return render_template("ui/instance.html", instance_id=instance_id)
