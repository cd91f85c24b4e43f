"""Pieces of the OpenAPI document shared by its modules (`openapi.py`, `openapi_schedules.py`)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter; given empty (`?limit=`) it counts as left out."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": schema,
        "description": description,
    }
