"""`/api/v1/schedules`: create, list, read, change and delete cron schedules; pause, resume, and
trigger (fire now). The firing itself runs in beat's pass (`orchestrator/schedule_firing.py`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api import query
from api.context import engine
from api.requests import json_object, optional_object
from orchestrator import schedule_firing, schedules, views
from workers.tasks import follow_up

bp = Blueprint("schedules", __name__, url_prefix="/api/v1/schedules")


@bp.post("")
def create() -> tuple[Response, int]:
    return jsonify(schedules.create(engine(), json_object()).as_dict()), 201


@bp.get("")
def list_page() -> Response:
    """`?limit=&after=<name>`: a page of schedules by name; `nextAfter` asks for the next one."""
    limit, after = query.schedule_page()
    page, next_after = schedules.list_page(engine(), limit, after)
    return jsonify({"schedules": [s.as_dict() for s in page], "nextAfter": next_after})


@bp.get("/<name>")
def one(name: str) -> Response:
    return jsonify(schedules.get(engine(), name).as_dict())


@bp.patch("/<name>")
def change(name: str) -> Response:
    return jsonify(schedules.change(engine(), name, json_object()).as_dict())


@bp.delete("/<name>")
def remove(name: str) -> Response:
    """200 with the schedule as it was; its instances stay."""
    return jsonify(schedules.remove(engine(), name).as_dict())


@bp.post("/<name>/pause")
def pause(name: str) -> Response:
    optional_object({})
    return jsonify(schedules.set_paused(engine(), name, True).as_dict())


@bp.post("/<name>/resume")
def resume(name: str) -> Response:
    """Fires next at the first fire time after now: the times passed while paused are not made up."""
    optional_object({})
    return jsonify(schedules.set_paused(engine(), name, False).as_dict())


@bp.post("/<name>/trigger")
def trigger(name: str) -> tuple[Response, int]:
    """Fire now: 201 with the new instance (and the schedule). 409 when a previous run is still
    open and the schedule's overlap is `skip`."""
    optional_object({})
    instance_id, report = schedule_firing.trigger(engine(), name)
    for outcome in report.outcomes:
        follow_up(outcome)
    instance = views.instance_summary_by_id(engine(), instance_id)
    return jsonify({"instance": instance, "schedule": schedules.get(engine(), name).as_dict()}), 201
