"""`/api/v1/definitions`: create, list, latest and one version."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import engine
from api.requests import json_body
from orchestrator import catalog

bp = Blueprint("definitions", __name__, url_prefix="/api/v1/definitions")


@bp.post("")
def create() -> tuple[Response, int]:
    stored, created = catalog.save_definition(engine(), json_body())
    return jsonify(stored.as_dict()), 201 if created else 200


@bp.get("")
def list_all() -> Response:
    return jsonify({"definitions": catalog.list_definitions(engine())})


@bp.get("/<name>")
def latest(name: str) -> Response:
    return jsonify(catalog.get_definition(engine(), name).as_dict())


@bp.get("/<name>/<version>")
def one(name: str, version: str) -> Response:
    return jsonify(catalog.get_definition(engine(), name, version).as_dict())
