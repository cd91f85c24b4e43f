"""The Flask app: a thin HTTP layer over `orchestrator/` that writes instances and enqueues `schedule`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from orchestrator import executors
from orchestrator.db import make_engine
from orchestrator.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, **config: Any) -> Flask:
    """Build the app. `settings` defaults to the `ORCH_*` environment.

    The messages the API sends (`schedule`, lifecycle follow-ups) go through the process's Celery
    sender, pointed here at `settings.broker_url`: one API process talks to one broker."""
    settings = settings or Settings.from_env()
    executors.load_modules(settings.executor_modules)
    _send_to(settings.broker_url)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False, **config)
    app.extensions["orchestrator.settings"] = settings
    app.extensions["orchestrator.engine"] = make_engine(settings.database_url, settings.db_pool_size)

    from api import (
        auth,
        definitions,
        errors,
        events,
        health,
        instances,
        lifecycle,
        limits,
        metrics,
        openapi,
        requests,
        schedules,
        signals,
        workers,
    )

    errors.init_app(app)
    auth.init_app(app, settings.api_tokens)
    requests.init_app(app)
    limits.init_app(app)
    app.register_blueprint(definitions.bp)
    app.register_blueprint(instances.bp)
    app.register_blueprint(lifecycle.bp)
    app.register_blueprint(signals.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(workers.bp)
    app.register_blueprint(limits.bp)
    app.register_blueprint(schedules.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(health.bp)
    metrics.init_app(app)  # /metrics, the /ui pages and ORCH_LOG_FORMAT
    if not settings.api_tokens:
        log.warning("ORCH_API_TOKENS is not set: the API is open to anyone who can reach it")
    return app


def _send_to(broker_url: str) -> None:
    from workers.app import app as celery_app
    from workers.app import use_broker

    if celery_app.conf.broker_url != broker_url:
        use_broker(broker_url)
