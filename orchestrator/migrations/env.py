"""Alembic environment: the target database comes from the caller's config or `ORCH_DATABASE_URL`."""

from __future__ import annotations

from alembic import context

from orchestrator.db import make_engine
from orchestrator.models import Base
from orchestrator.settings import Settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # a one-shot command keeps no connection open


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
