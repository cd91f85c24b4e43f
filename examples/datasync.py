"""The seed's `data-sync-pipeline`: validate a source, extract it in batches, transform, sync to a target.

The nodes have no config; everything comes from the instance input (`sourceSystem`, `targetSystem`,
`dataFilter`, `batchSize`). Files under the examples' data directory:

    sources/<sourceSystem>.sqlite3   records(id, name, amount, updated_at), seeded with demo rows if absent
    staging.sqlite3                  staged and transformed rows keyed by (instance_id, id)
    targets/<targetSystem>.sqlite3   records keyed by (source_system, id)

Extract, transform and sync walk rows in id order and checkpoint the last id after every batch, so the
attempt after a crash, a pause or a worker shutdown resumes there instead of at zero. Writes replace by
key, so a batch done twice (written, then the worker died before the checkpoint) is harmless.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from examples.storage import connect, data_dir, env_number, environment, safe_name, transaction
from orchestrator.context import ExecutionContext
from orchestrator.errors import Fatal, StopRequested
from orchestrator.executors import executor

SOURCE_ROWS_ENV = "ORCH_EXAMPLES_SOURCE_ROWS"
BATCH_DELAY_ENV = "ORCH_EXAMPLES_BATCH_DELAY"
DEFAULT_SOURCE_ROWS = 2500
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 100_000

Row = tuple[Any, ...]

# dataFilter key -> (SQL condition on the source's records, accepted value types)
_FILTERS: dict[str, tuple[str, tuple[type, ...]]] = {
    "minAmount": ("amount >= ?", (int, float)),
    "maxAmount": ("amount <= ?", (int, float)),
    "updatedSince": ("updated_at >= ?", (str,)),
}

_SOURCE_SCHEMA = "CREATE TABLE records (id INTEGER PRIMARY KEY, name TEXT, amount REAL, updated_at TEXT)"
_STAGING_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged (instance_id TEXT NOT NULL, id INTEGER NOT NULL, name TEXT, amount REAL,
    updated_at TEXT, PRIMARY KEY (instance_id, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transformed (instance_id TEXT NOT NULL, id INTEGER NOT NULL, name TEXT,
    amount_cents INTEGER, updated_at TEXT, PRIMARY KEY (instance_id, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_runs (instance_id TEXT PRIMARY KEY, source_system TEXT NOT NULL,
    target_system TEXT NOT NULL, synced INTEGER NOT NULL, finished_at TEXT NOT NULL);
"""
_TARGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (source_system TEXT NOT NULL, id INTEGER NOT NULL, name TEXT,
    amount_cents INTEGER, updated_at TEXT, synced_at TEXT NOT NULL, PRIMARY KEY (source_system, id));
"""

_UPSERT = """
INSERT INTO records VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source_system, id) DO UPDATE
    SET name = excluded.name, amount_cents = excluded.amount_cents, updated_at = excluded.updated_at,
        synced_at = excluded.synced_at
"""

_FIRST = ("ann", "BOB", " chen  wei", "dana", "émile", "FARAH", "guo", "hana")
_LAST = ("smith ", "li", " o'neil", "MÜLLER", "garcia", "  tanaka", "kowalski")


def source_path(system: str) -> Path:
    return data_dir() / "sources" / f"{system}.sqlite3"


def target_path(system: str) -> Path:
    return data_dir() / "targets" / f"{system}.sqlite3"


@contextmanager
def staging_db() -> Iterator[sqlite3.Connection]:
    with connect(data_dir() / "staging.sqlite3") as conn:
        conn.executescript(_STAGING_SCHEMA)
        yield conn


def _system(ctx: ExecutionContext, field: str) -> str:
    return safe_name((ctx.input or {}).get(field), field)


def _filter_sql(raw: Any) -> tuple[str, list[Any]]:
    """`dataFilter` as extra WHERE conditions; an unknown key fails the node rather than syncing too much."""
    if raw is None:
        return "", []
    if not isinstance(raw, dict):
        raise Fatal("dataFilter must be an object")
    unknown = sorted(set(raw) - set(_FILTERS))
    if unknown:
        raise Fatal(
            f"unsupported dataFilter keys: {', '.join(unknown)}", unknown=unknown, supported=sorted(_FILTERS)
        )
    clauses, params = [], []
    for key, value in raw.items():
        condition, types = _FILTERS[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise Fatal(f"dataFilter.{key} has the wrong type: {value!r}")
        clauses.append(f" AND {condition}")
        params.append(value)
    return "".join(clauses), params


def _batch_size(ctx: ExecutionContext) -> int:
    raw = (ctx.input or {}).get("batchSize")
    if raw is None:
        return DEFAULT_BATCH_SIZE
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or (isinstance(raw, float) and not raw.is_integer())
    ):
        raise Fatal(f"batchSize must be an integer, got {raw!r}")
    if not 1 <= raw <= MAX_BATCH_SIZE:
        raise Fatal(f"batchSize must be between 1 and {MAX_BATCH_SIZE}, got {raw}")
    return int(raw)


def _run_batches(
    ctx: ExecutionContext,
    step: str,
    fetch: Callable[[int, int], list[Row]],
    write: Callable[[list[Row]], None],
) -> int:
    """Process rows (id first) after the checkpointed id, one batch at a time; returns the last id done."""
    size = _batch_size(ctx)
    delay = env_number(BATCH_DELAY_ENV, 0.0)
    offset = int((ctx.last_checkpoint or {}).get("offset", 0))
    if offset:
        ctx.log.info(f"{step}: resuming after id {offset}", {"offset": offset, "attempt": ctx.attempt})
    while True:
        if ctx.should_stop:  # paused, or the worker is stopping: the next attempt resumes here
            ctx.checkpoint({"offset": offset})
            ctx.log.info(f"{step}: stopping at offset {offset}", {"offset": offset})
            raise StopRequested(f"stopped at offset {offset}")
        rows = fetch(offset, size)
        if not rows:
            return offset
        write(rows)
        first, offset = rows[0][0], rows[-1][0]
        ctx.checkpoint({"offset": offset})
        ctx.heartbeat()
        ctx.log.info(
            f"{step}: batch of ids {first}..{offset} ({len(rows)} rows)",
            {"first": first, "last": offset, "rows": len(rows), "attempt": ctx.attempt},
        )
        if delay:
            environment.sleep(delay)


def _demo_rows(count: int) -> Iterable[Row]:
    """Deterministic demo data with untidy names, so the transform has something to do."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(1, count + 1):
        name = f" {_FIRST[i % len(_FIRST)]}  {_LAST[(i * 7) % len(_LAST)]} "
        amount = ((i * 7919) % 1_000_000) / 100
        yield i, name, amount, (base + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


@executor("datasync.sourceValidator")
def validate_source(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Check the input and that the source exists, seeding a missing one with demo rows."""
    source = _system(ctx, "sourceSystem")
    _system(ctx, "targetSystem")
    where, params = _filter_sql((ctx.input or {}).get("dataFilter"))
    _batch_size(ctx)
    with connect(source_path(source)) as db:
        # BEGIN IMMEDIATE makes the check-and-seed atomic when two instances validate a new source at once.
        with transaction(db):
            seeded = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone() is None
            if seeded:
                db.execute(_SOURCE_SCHEMA)
                count = int(env_number(SOURCE_ROWS_ENV, DEFAULT_SOURCE_ROWS))
                db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", _demo_rows(count))
        (total,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
        (matching,) = db.execute(f"SELECT COUNT(*) FROM records WHERE 1 = 1{where}", params).fetchone()
    ctx.log.info(
        f"source {source}: {total} rows, {matching} selected" + (" (seeded demo data)" if seeded else ""),
        {"sourceSystem": source, "rowCount": total, "matchingRows": matching, "seeded": seeded},
    )
    return {"sourceSystem": source, "rowCount": total, "matchingRows": matching, "seeded": seeded}


@executor("datasync.dataExtractor")
def extract(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Copy the selected source rows into staging, batch by batch, resuming at the checkpointed id."""
    source = _system(ctx, "sourceSystem")
    where, params = _filter_sql((ctx.input or {}).get("dataFilter"))
    path = source_path(source)
    if not path.exists():
        raise Fatal(f"source {source!r} does not exist (the validate node creates it)", path=str(path))
    with connect(path) as src, staging_db() as stage:

        def fetch(after: int, limit: int) -> list[Row]:
            sql = f"SELECT id, name, amount, updated_at FROM records WHERE id > ?{where} ORDER BY id LIMIT ?"
            return src.execute(sql, (after, *params, limit)).fetchall()

        def write(rows: list[Row]) -> None:
            with transaction(stage):
                stage.executemany(
                    "INSERT OR REPLACE INTO staged VALUES (?, ?, ?, ?, ?)",
                    [(ctx.instance_id, *row) for row in rows],
                )

        last = _run_batches(ctx, "extract", fetch, write)
        (count,) = stage.execute(
            "SELECT COUNT(*) FROM staged WHERE instance_id = ?", (ctx.instance_id,)
        ).fetchone()
    return {"extracted": count, "offset": last}


def _transform_row(row: Row) -> Row:
    """Tidy the name and turn the amount into exact integer cents."""
    row_id, name, amount, updated_at = row
    tidy = " ".join(str(name or "").split()).title()
    cents = None if amount is None else int((Decimal(str(amount)) * 100).quantize(Decimal(1), ROUND_HALF_UP))
    return row_id, tidy, cents, updated_at


@executor("datasync.dataTransformer")
def transform(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Transform this instance's staged rows, batch by batch, resuming at the checkpointed id."""
    with staging_db() as stage:

        def fetch(after: int, limit: int) -> list[Row]:
            return stage.execute(
                "SELECT id, name, amount, updated_at FROM staged WHERE instance_id = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (ctx.instance_id, after, limit),
            ).fetchall()

        def write(rows: list[Row]) -> None:
            with transaction(stage):
                stage.executemany(
                    "INSERT OR REPLACE INTO transformed VALUES (?, ?, ?, ?, ?)",
                    [(ctx.instance_id, *_transform_row(row)) for row in rows],
                )

        _run_batches(ctx, "transform", fetch, write)
        (count,) = stage.execute(
            "SELECT COUNT(*) FROM transformed WHERE instance_id = ?", (ctx.instance_id,)
        ).fetchone()
    return {"transformed": count}


@executor("datasync.dataSyncer")
def sync(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Upsert the transformed rows into the target, batch by batch, then drop this instance's staging."""
    source, target = _system(ctx, "sourceSystem"), _system(ctx, "targetSystem")
    with staging_db() as stage:
        done = stage.execute(
            "SELECT synced FROM sync_runs WHERE instance_id = ?", (ctx.instance_id,)
        ).fetchone()
        if done is not None:
            # The node finished before but its result was not recorded (e.g. the worker died right after).
            ctx.log.info(f"sync: already done for this instance ({done[0]} rows)", {"synced": done[0]})
            return {"synced": done[0], "targetSystem": target}
        with connect(target_path(target)) as dst:
            dst.executescript(_TARGET_SCHEMA)

            def fetch(after: int, limit: int) -> list[Row]:
                return stage.execute(
                    "SELECT id, name, amount_cents, updated_at FROM transformed"
                    " WHERE instance_id = ? AND id > ? ORDER BY id LIMIT ?",
                    (ctx.instance_id, after, limit),
                ).fetchall()

            def write(rows: list[Row]) -> None:
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                with transaction(dst):
                    dst.executemany(_UPSERT, [(source, *row, now) for row in rows])

            _run_batches(ctx, "sync", fetch, write)
        (count,) = stage.execute(
            "SELECT COUNT(*) FROM transformed WHERE instance_id = ?", (ctx.instance_id,)
        ).fetchone()
        # Recording the run and dropping the staging in one transaction: a re-run sees one or the other.
        with transaction(stage):
            stage.execute(
                "INSERT OR IGNORE INTO sync_runs VALUES (?, ?, ?, ?, ?)",
                (ctx.instance_id, source, target, count, datetime.now(UTC).isoformat()),
            )
            stage.execute("DELETE FROM staged WHERE instance_id = ?", (ctx.instance_id,))
            stage.execute("DELETE FROM transformed WHERE instance_id = ?", (ctx.instance_id,))
    ctx.log.info(f"sync: {count} rows in {target}", {"synced": count, "targetSystem": target})
    return {"synced": count, "targetSystem": target}
