"""Versioned schema migrations, applied in order at start-up inside one transaction.

Each migration is plain SQL per backend; the few type names that differ are filled in from `_TYPES`
(SQLite keeps times as integer microseconds since the epoch, PostgreSQL as timestamptz; JSON as TEXT / jsonb).
The caller holds the backend's migration lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so two
replicas starting at once apply each migration exactly once. Never edit a released migration: append one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from .backend import Backend, Tx
from .chain import GENESIS, backfill

_TYPES = {
    "sqlite": {"TIME": "INTEGER", "JSON": "TEXT", "INT": "INTEGER", "BIGINT": "INTEGER"},
    "postgres": {"TIME": "timestamptz", "JSON": "jsonb", "INT": "integer", "BIGINT": "bigint"},
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


# the hash chain (chain.py), the sinks' delivery cursors and the signed checkpoints
_V2 = [
    "ALTER TABLE events ADD COLUMN seq {BIGINT}",
    "ALTER TABLE events ADD COLUMN prev_hash text",
    "ALTER TABLE events ADD COLUMN hash text",
    # 'head': the newest event's seq and hash; 'anchor': the newest event retention deleted (where a
    # verification starts). Two rows, two row locks: retention never holds the head.
    "CREATE TABLE audit_chain (name text PRIMARY KEY, seq {BIGINT} NOT NULL, hash text NOT NULL)",
    f"INSERT INTO audit_chain (name, seq, hash) VALUES ('head', 0, '{GENESIS}'), ('anchor', 0, '{GENESIS}')",  # noqa: S608 -- a constant
    # one row per configured sink: every event with seq <= this one was acknowledged by the sink
    "CREATE TABLE sink_cursors (sink text PRIMARY KEY, seq {BIGINT} NOT NULL, updated_at {TIME} NOT NULL)",
    """CREATE TABLE audit_checkpoints (
    seq {BIGINT} PRIMARY KEY,
    hash text NOT NULL,
    signed_at {TIME} NOT NULL,
    key_id text NOT NULL,
    signature text NOT NULL
)""",
]
# after the backfill numbered the events written before the chain existed
_V2_AFTER = ["CREATE UNIQUE INDEX events_seq ON events (seq)"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    # a step in Python between `statements` and `after` (data that SQL alone cannot compute)
    run: Callable[[Tx, Backend], Awaitable[object]] | None = None
    after: tuple[str, ...] = ()

    def sql(self, backend: str, statements: tuple[str, ...] | None = None) -> list[str]:
        chosen = self.statements if statements is None else statements
        return [stmt.format(**_TYPES[backend]) for stmt in chosen]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "issuances and events", tuple(_V1)),
    Migration(2, "hash chain, sink cursors, checkpoints", tuple(_V2), backfill, tuple(_V2_AFTER)),
)
LATEST = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer broker: refuse rather than write rows it does not expect."""


async def migrate(tx: Tx, backend: Backend, now: datetime) -> list[int]:
    """Apply the missing migrations; the versions applied (empty when the schema was current)."""
    time_type = _TYPES[backend.name]["TIME"]
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
        for statement in migration.sql(backend.name):
            await tx.execute(statement)
        if migration.run is not None:
            await migration.run(tx, backend)
        for statement in migration.sql(backend.name, migration.after):
            await tx.execute(statement)
        await tx.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, backend.encode_time(now)),
        )
        applied.append(migration.version)
    return applied
