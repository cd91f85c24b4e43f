"""Stored workflow definitions: idempotent create, version lookup, and a per-process parse cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from orchestrator import semver
from orchestrator.definitions import WorkflowDefinition, parse_definition
from orchestrator.errors import Conflict, Problem, WorkflowNotFound
from orchestrator.models import DefinitionRow

_CACHE_SIZE = 1024
_cache: dict[tuple[int, int], WorkflowDefinition] = {}


@dataclass(frozen=True)
class StoredDefinition:
    id: int
    definition: WorkflowDefinition
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        body = dict(self.definition.to_json())
        body.setdefault("version", self.definition.version)
        return {**body, "id": self.id, "createdAt": self.created_at.isoformat() + "Z"}


def save_definition(engine: Engine, body: Any) -> tuple[StoredDefinition, bool]:
    """Validate and store a definition. Returns (stored, created).

    The same (name, version) with the same content is accepted again (created=False); with other
    content it raises Conflict. Raises ValidationError listing every problem of an invalid body.
    """
    definition = parse_definition(body)
    digest = definition.content_hash()
    existing = _find(engine, definition.name, definition.version)
    if existing is None:
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(DefinitionRow).values(
                        name=definition.name,
                        version=definition.version,
                        description=definition.description,
                        body=definition.to_json(),
                        content_hash=digest,
                    )
                )
        except IntegrityError:
            pass  # a concurrent identical post won the unique key: fall through to compare
        else:
            stored = _find(engine, definition.name, definition.version)
            assert stored is not None
            return stored, True
        existing = _find(engine, definition.name, definition.version)
        assert existing is not None
    if existing.definition.content_hash() != digest:
        raise Conflict(
            f"workflow {definition.name!r} version {definition.version!r} exists with other content",
            [
                Problem(
                    "version", "this version exists with different content; post a new version", "CONFLICT"
                )
            ],
        )
    return existing, False


# built once: every instance created looks its definition up
_VERSIONS = select(DefinitionRow.id, DefinitionRow.version, DefinitionRow.created_at).where(
    DefinitionRow.name == bindparam("name")
)
_VERSION = _VERSIONS.where(DefinitionRow.version == bindparam("version"))


def _find(engine: Engine, name: str, version: str) -> StoredDefinition | None:
    with engine.connect() as conn:
        row = conn.execute(_VERSION, {"name": name, "version": version}).first()
        return None if row is None else _stored(engine, row, conn)


def _stored(engine: Engine, row: Any, conn: Connection) -> StoredDefinition:
    return StoredDefinition(row.id, load_definition(engine, row.id, conn), row.created_at)


def get_definition(
    engine: Engine, name: str, version: str | None = None, conn: Connection | None = None
) -> StoredDefinition:
    """The definition `name` at `version`; `latest` or None means the highest semantic version.

    One query either way, on the caller's `conn` when given (creating an instance looks its
    definition up in the transaction that writes it). Raises WorkflowNotFound.
    """
    if conn is None:
        with engine.connect() as own:
            return get_definition(engine, name, version, own)
    if version in (None, "", "latest"):
        rows = {row.version: row for row in conn.execute(_VERSIONS, {"name": name})}
        latest = semver.latest(list(rows))
        if latest is None:
            raise WorkflowNotFound(
                f"no workflow named {name!r}", [Problem("workflow", "not found", "WORKFLOW_NOT_FOUND")]
            )
        return _stored(engine, rows[latest], conn)
    row = conn.execute(_VERSION, {"name": name, "version": version}).first()
    if row is None:
        raise WorkflowNotFound(
            f"workflow {name!r} has no version {version!r}",
            [Problem("version", f"no version {version!r}", "WORKFLOW_NOT_FOUND")],
        )
    return _stored(engine, row, conn)


def list_definitions(engine: Engine, name: str | None = None) -> list[dict[str, Any]]:
    """One summary per stored (name, version), newest version first within a name."""
    statement = select(
        DefinitionRow.id,
        DefinitionRow.name,
        DefinitionRow.version,
        DefinitionRow.description,
        DefinitionRow.created_at,
    )
    if name is not None:
        statement = statement.where(DefinitionRow.name == name)
    with engine.connect() as conn:
        rows = list(conn.execute(statement).all())
    rows.sort(key=lambda r: (r.name, semver.parse_version(r.version)), reverse=True)
    rows.sort(key=lambda r: r.name)
    return [
        {
            "id": r.id,
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "createdAt": r.created_at.isoformat() + "Z",
        }
        for r in rows
    ]


def load_definition(engine: Engine, definition_id: int, conn: Connection | None = None) -> WorkflowDefinition:
    """The parsed definition with this row id; cached, since a stored definition never changes.

    Inside a transaction pass its `conn`: on SQLite a second connection would wait for the lock
    that the caller's own transaction holds.
    """
    key = (id(engine), definition_id)
    found = _cache.get(key)
    if found is None:
        statement = select(DefinitionRow.body).where(DefinitionRow.id == definition_id)
        if conn is None:
            with engine.connect() as own:
                body = own.execute(statement).scalar_one()
        else:
            body = conn.execute(statement).scalar_one()
        # executors are checked when a definition is posted; a worker lacking one fails that node only
        found = parse_definition(body, check_executors=False, stored=True)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = found
    return found


def clear_cache() -> None:
    _cache.clear()
