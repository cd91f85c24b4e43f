"""Access to the app's engine and settings from request handlers."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import Engine

from orchestrator.settings import Settings


def engine() -> Engine:
    return current_app.extensions["orchestrator.engine"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.extensions["orchestrator.settings"]  # type: ignore[no-any-return]
