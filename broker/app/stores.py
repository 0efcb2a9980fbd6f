"""The audit store [audit] describes (not yet opened: `await store.open()`, or `async with store:`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from broker.audit.backend import Backend
from broker.audit.jsonl import JsonlSink, TeeStore
from broker.audit.postgres import PostgresBackend
from broker.audit.records import ContextLimits, utc_now
from broker.audit.sqlite import SqliteBackend
from broker.audit.sqlstore import SqlAuditStore
from broker.audit.store import AuditStore
from broker.settings import AuditSettings


def make_backend(settings: AuditSettings) -> Backend:
    if settings.backend == "postgres":
        assert settings.postgres_dsn is not None  # the settings model requires it for this backend
        return PostgresBackend(
            settings.postgres_dsn,
            schema=settings.postgres_schema,
            pool_size=settings.pool_size,
            connect_timeout=settings.connect_timeout_seconds,
            command_timeout=settings.write_timeout_seconds,
        )
    return SqliteBackend(
        settings.sqlite_path,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        connect_timeout=settings.connect_timeout_seconds,
    )


def make_sql_store(settings: AuditSettings, *, clock: Callable[[], datetime] = utc_now) -> SqlAuditStore:
    return SqlAuditStore(
        make_backend(settings),
        retention_days=settings.retention_days,
        max_batch=settings.group_commit_max_batch,
        max_delay=settings.group_commit_max_delay_ms / 1000,
        queue_size=settings.queue_size,
        timeout=settings.write_timeout_seconds,
        context_limits=ContextLimits(
            settings.context_max_entries, settings.context_max_key_length, settings.context_max_value_length
        ),
        clock=clock,
    )


def open_store(settings: AuditSettings, *, clock: Callable[[], datetime] = utc_now) -> AuditStore:
    """The store `settings` describe, teeing events to JSON lines when `jsonl_path` is set."""
    store = make_sql_store(settings, clock=clock)
    if settings.jsonl_path is None:
        return store
    return TeeStore(store, JsonlSink(settings.jsonl_path))
