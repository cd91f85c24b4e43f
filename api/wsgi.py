"""WSGI entry point for gunicorn. `orchestrator api` runs it as
`gunicorn --config <path of api/gunicorn_conf.py> api.wsgi:app`: gevent workers, the header timeout and
the redacting access log come from that file, so start it with that file when running gunicorn by hand."""

from __future__ import annotations

from api import create_app

app = create_app()
