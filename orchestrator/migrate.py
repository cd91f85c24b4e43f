"""`orchestrator db upgrade`: apply the alembic migrations shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from orchestrator.connectivity import check_database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; running it again on an up-to-date database changes nothing.

    Raises connectivity.Unreachable (one line, password hidden) when the database cannot be reached
    or refuses the credentials: asked first, so that a wrong user is not reported from deep inside
    alembic. An error of a migration itself propagates as it is."""
    check_database(database_url)
    command.upgrade(alembic_config(database_url), revision)
