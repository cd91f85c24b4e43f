"""The seed's `user-onboarding` workflow: validate, create the account, grant permissions, send a welcome.

The user directory is one SQLite file, `users.sqlite3` in the examples' data directory, with the
tables `users`, `permissions` and `outbox` (the "sent" mail). A node may run again after a retry or
after its worker died, so every write is idempotent: users are keyed on their email, permissions on
(user, permission), mails on (instance, node).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from examples.storage import connect, data_dir, transaction
from orchestrator.context import ExecutionContext
from orchestrator.errors import Fatal
from orchestrator.executors import executor

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PERMISSION = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Ids are derived (uuid5) rather than random, so two racing attempts compute the same one.
_IDS = uuid.UUID("6f3c2a52-8a1e-4d1b-9a57-2f0c5e1d9b10")
MAIL_FROM = "onboarding@example.invalid"

_TEMPLATES = {
    "welcome": (
        "Welcome, {name}!",
        "Hello {name},\n\nyour account {userId} is ready. Welcome aboard!\n\n-- The onboarding robot\n",
    ),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, department TEXT NOT NULL,
    role TEXT NOT NULL, created_at TEXT NOT NULL, created_by_instance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS permissions (
    user_id TEXT NOT NULL REFERENCES users (user_id), permission TEXT NOT NULL, granted_at TEXT NOT NULL,
    granted_by_instance TEXT NOT NULL, PRIMARY KEY (user_id, permission));
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, node_id TEXT NOT NULL, recipient TEXT NOT NULL,
    subject TEXT NOT NULL, raw TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (instance_id, node_id));
"""


@contextmanager
def users_db() -> Iterator[sqlite3.Connection]:
    """The user directory, its tables created on first use."""
    with connect(data_dir() / "users.sqlite3") as conn:
        conn.executescript(_SCHEMA)
        yield conn


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def _email(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise Fatal(f"{field} is not a valid email address: {value!r}", field=field)
    return value.strip().lower()


@executor("userValidator")
def validate_user(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Check that `config.requiredFields` are present and non-empty in the input, and the email's form."""
    required = (config or {}).get("requiredFields") or []
    if not isinstance(required, list) or not all(isinstance(f, str) for f in required):
        raise Fatal("config.requiredFields must be a list of field names")
    data = ctx.input or {}
    missing = [f for f in required if _is_blank(data.get(f))]
    if missing:
        ctx.log.warning("user data incomplete", {"missing": missing})
        raise Fatal(f"missing required fields: {', '.join(missing)}", missing=missing)
    if "email" in data or "email" in required:
        _email(data.get("email"), "email")
    ctx.log.info("user data valid", {"fields": required})
    return {"valid": True, "fields": required}


@executor("userCreator")
def create_user(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Create the account keyed on the email; an account that already exists is returned, not duplicated."""
    config = config or {}
    data = ctx.input or {}
    email = _email(data.get("email"), "email")
    name = str(data.get("name") or "").strip()
    department = str(config.get("department") or "").strip()
    role = str(config.get("role") or "").strip() or "employee"
    if not name or not department:
        raise Fatal("a user needs a name and a department")
    user_id = "usr_" + uuid.uuid5(_IDS, email).hex[:16]
    with users_db() as db, transaction(db):
        created = (
            db.execute(
                "INSERT OR IGNORE INTO users (user_id, email, name, department, role, created_at,"
                " created_by_instance) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, email, name, department, role, _now(), ctx.instance_id),
            ).rowcount
            == 1
        )
        if not created:
            # Same person onboarded again (or this node re-run): keep the account, refresh its placement.
            db.execute(
                "UPDATE users SET name = ?, department = ?, role = ? WHERE user_id = ?",
                (name, department, role, user_id),
            )
    ctx.log.info("user created" if created else "user already existed", {"userId": user_id, "email": email})
    return {"userId": user_id, "email": email, "department": department, "role": role, "created": created}


@executor("permissionSetter")
def set_permissions(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Grant `config.permissions` (a name or a list; none is fine) to `config.userId`."""
    config = config or {}
    user_id = config.get("userId")
    raw = config.get("permissions")
    wanted = [] if raw is None else [raw] if isinstance(raw, str) else raw
    if not isinstance(wanted, list) or not all(isinstance(p, str) and _PERMISSION.match(p) for p in wanted):
        raise Fatal(f"config.permissions must be permission names, got {raw!r}")
    permissions = list(dict.fromkeys(wanted))
    with users_db() as db, transaction(db):
        if db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is None:
            raise Fatal(f"no user {user_id!r}", userId=user_id)
        db.executemany(
            "INSERT OR IGNORE INTO permissions (user_id, permission, granted_at, granted_by_instance)"
            " VALUES (?, ?, ?, ?)",
            [(user_id, p, _now(), ctx.instance_id) for p in permissions],
        )
    ctx.log.info("permissions granted", {"userId": user_id, "permissions": permissions})
    return {"userId": user_id, "permissions": permissions}


@executor("emailSender")
def send_email(ctx: ExecutionContext, config: dict[str, Any]) -> dict[str, Any]:
    """Render the template into an RFC 822 message and put it in the outbox, once per (instance, node)."""
    config = config or {}
    to = _email(config.get("to"), "config.to")
    template = config.get("template")
    if template not in _TEMPLATES:
        raise Fatal(f"unknown email template {template!r}", known=sorted(_TEMPLATES))
    data = config.get("data") or {}
    try:
        subject, body = (part.format_map(data) for part in _TEMPLATES[template])
    except KeyError as exc:
        raise Fatal(f"template {template!r} needs config.data.{exc.args[0]}") from None
    message_id = f"<{uuid.uuid5(_IDS, f'{ctx.instance_id}/{ctx.node_id}')}@example.invalid>"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = MAIL_FROM, to, subject
    msg["Message-ID"], msg["Date"] = message_id, format_datetime(datetime.now(UTC))
    msg.set_content(body)
    with users_db() as db, transaction(db):
        queued = (
            db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, instance_id, node_id, recipient, subject, raw,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, ctx.instance_id, ctx.node_id, to, subject, msg.as_string(), _now()),
            ).rowcount
            == 1
        )
    ctx.log.info(
        "welcome email queued" if queued else "welcome email was already queued",
        {"messageId": message_id, "to": to},
    )
    return {"messageId": message_id, "to": to, "subject": subject}
