"""Versioned schema migrations, applied in order at start-up inside one transaction.

Each migration is plain SQL per backend; the few type names that differ are filled in from `_TYPES`
(SQLite keeps times as integer microseconds since the epoch, PostgreSQL as timestamptz; JSON as TEXT / jsonb).
The caller holds the backend's migration lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so two
replicas starting at once apply each migration exactly once. Never edit a released migration: append one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .backend import Tx

_TYPES = {
    "sqlite": {"TIME": "INTEGER", "JSON": "TEXT", "INT": "INTEGER"},
    "postgres": {"TIME": "timestamptz", "JSON": "jsonb", "INT": "integer"},
}

_RECORD_COLUMNS = """
    ts {TIME} NOT NULL,
    event text NOT NULL CHECK (event IN ('pending','issued','denied','failed','revoked','expired','aborted')),
    status {INT},
    caller_user text NOT NULL,
    caller_method text NOT NULL,
    caller_groups {JSON} NOT NULL,
    source_address text NOT NULL,
    user_agent text NOT NULL,
    role text NOT NULL,
    cluster text NOT NULL,
    namespace text NOT NULL,
    service_account text NOT NULL,
    audiences {JSON} NOT NULL,
    ttl_requested {INT},
    ttl_granted {INT},
    jti text,
    token_sha256 text CHECK (token_sha256 IS NULL OR length(token_sha256) = 64),
    issued_at {TIME},
    expires_at {TIME},
    revoke_at {TIME},
    secret_namespace text,
    secret_name text,
    secret_uid text,
    context {JSON} NOT NULL,
    reason text NOT NULL,
    request_id text NOT NULL,
    revoked_by text,
    revoked_at {TIME}"""

_V1 = [
    # current state of every issuance; live_until = min(exp, revoke_at), far future for a legacy token
    f"""CREATE TABLE issuances (
    id text PRIMARY KEY,{_RECORD_COLUMNS},
    updated_at {{TIME}} NOT NULL,
    live_until {{TIME}}
)""",
    # keyset paging (ts, id) newest first, alone and after each equality filter the API offers
    "CREATE INDEX issuances_ts ON issuances (ts, id)",
    "CREATE INDEX issuances_caller_ts ON issuances (caller_user, ts, id)",
    "CREATE INDEX issuances_role_ts ON issuances (role, ts, id)",
    "CREATE INDEX issuances_namespace_ts ON issuances (namespace, ts, id)",
    "CREATE INDEX issuances_event_ts ON issuances (event, ts, id)",
    "CREATE INDEX issuances_jti ON issuances (jti) WHERE jti IS NOT NULL",
    # ?active=true: the few live tokens, whatever their age
    "CREATE INDEX issuances_live ON issuances (live_until) WHERE event = 'issued'",
    # the janitor's work list and start-up repair's
    "CREATE INDEX issuances_cleanup ON issuances (live_until) WHERE event = 'issued' AND secret_name IS NOT NULL",
    "CREATE INDEX issuances_pending ON issuances (ts) WHERE event = 'pending'",
    # append-only decisions; a full snapshot per row
    f"""CREATE TABLE events (
    event_id text PRIMARY KEY,
    id text NOT NULL,{_RECORD_COLUMNS}
)""",
    "CREATE INDEX events_ts ON events (ts, event_id)",
    "CREATE INDEX events_caller_ts ON events (caller_user, ts, event_id)",
    "CREATE INDEX events_role_ts ON events (role, ts, event_id)",
    "CREATE INDEX events_namespace_ts ON events (namespace, ts, event_id)",
    "CREATE INDEX events_event_ts ON events (event, ts, event_id)",
    "CREATE INDEX events_id ON events (id, ts)",
]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, backend: str) -> list[str]:
        return [stmt.format(**_TYPES[backend]) for stmt in self.statements]


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "issuances and events", tuple(_V1)),)
LATEST = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer broker: refuse rather than write rows it does not expect."""


async def migrate(tx: Tx, backend: str, now: datetime, encode_time: Callable[[datetime], Any]) -> list[int]:
    """Apply the missing migrations; the versions applied (empty when the schema was current)."""
    time_type = _TYPES[backend]["TIME"]
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        f"version integer PRIMARY KEY, description text NOT NULL, applied_at {time_type} NOT NULL)"
    )
    rows = await tx.fetch("SELECT max(version) AS version FROM schema_version")
    current = int(rows[0]["version"] or 0)
    if current > LATEST:
        raise SchemaTooNew(f"audit schema is at version {current}; this broker knows up to {LATEST}")
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        for statement in migration.sql(backend):
            await tx.execute(statement)
        await tx.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, encode_time(now)),
        )
        applied.append(migration.version)
    return applied
