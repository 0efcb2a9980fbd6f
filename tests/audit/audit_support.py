"""Shared fixtures and record builders for the audit store suite (run against SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from backends import unavailable

from broker.app.stores import make_sql_store
from broker.audit import AuditRecord, SqlAuditStore
from broker.settings import AuditSettings

# CI starts PostgreSQL here; override to point the suite elsewhere
PG_DSN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2030, 1, 1, tzinfo=UTC)

_pg_problem: list[str | None] = []


async def _pg_unreachable() -> str | None:
    """None when PostgreSQL answers, else why not (asked once per run)."""
    if not _pg_problem:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=3)
            await conn.close()
            _pg_problem.append(None)
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            _pg_problem.append(f"PostgreSQL not reachable at {PG_DSN}: {type(err).__name__}: {err}")
    return _pg_problem[0]


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


SettingsFactory = Callable[..., AuditSettings]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def make_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SettingsFactory]:
    """Builds settings for this test's private database: a file under tmp_path, or a fresh PG schema."""
    backend = request.param
    if backend == "postgres":
        problem = await _pg_unreachable()
        if problem:
            # CI must not pass with half the store suite skipped; elsewhere say how to get it
            unavailable(f"{problem} (tools/postgres.sh installs and starts it)")
    schemas: list[str] = []
    # one database per test (shared by every store the test opens), unless asked for another
    default_schema = f"audit_test_{uuid.uuid4().hex[:12]}"

    def factory(**overrides: Any) -> AuditSettings:
        base: dict[str, Any] = {"group_commit_max_delay_ms": 1.0, "write_timeout_seconds": 10.0}
        if backend == "postgres":
            schema = overrides.pop("postgres_schema", default_schema)
            if schema not in schemas:
                schemas.append(schema)
            base |= {"backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema, "pool_size": 4}
        else:
            base |= {"sqlite_path": tmp_path / overrides.pop("sqlite_name", "audit.sqlite3")}
        return AuditSettings(**(base | overrides))

    yield factory
    for schema in schemas:
        await drop_schema(schema)


@pytest.fixture
async def store(make_settings: SettingsFactory) -> AsyncIterator[SqlAuditStore]:
    s = make_sql_store(make_settings(), clock=lambda: T0)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def backend_of(store: SqlAuditStore) -> str:
    return store.backend.name


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def pending(
    *, at: datetime = T0, caller: str = "alice", role: str = "deployer", namespace: str = "team-a", **kw: Any
) -> AuditRecord:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "time": at,
        "event": "pending",
        "caller_user": caller,
        "caller_method": "mtls",
        "caller_groups": ("ci", "team-a"),
        "source_address": "10.0.0.7",
        "user_agent": "jenkins/2.440",
        "role": role,
        "cluster": "prod",
        "namespace": namespace,
        "service_account": f"tb-{role}",
        "audiences": ("https://kubernetes.default.svc",),
        "ttl_requested": 900,
        "ttl_granted": 900,
        "context": {"job": "deploy-api", "build_url": "https://ci.example/job/deploy-api/42/"},
        "request_id": "req-1",
    }
    fields.update(kw)
    return AuditRecord(**fields)


async def issue(
    store: SqlAuditStore,
    *,
    at: datetime = T0,
    ttl: int = 900,
    revoke_at: datetime | None = None,
    secret: bool = True,
    **kw: Any,
) -> AuditRecord:
    """A full write-ahead issuance: begin, then complete; returns the `issued` event."""
    from broker.audit import SecretBinding

    rec = pending(at=at, **kw)
    await store.begin_issuance(rec)
    return await store.complete_issuance(
        rec.id,
        jti=str(uuid.uuid4()),
        token_sha256=sha(f"token-{rec.id}"),
        issued_at=at,
        expires_at=at + timedelta(seconds=ttl),
        revoke_at=revoke_at,
        bound_secret=SecretBinding(rec.namespace, f"tb-{rec.id[:8]}", str(uuid.uuid4())) if secret else None,
    )


async def gather_bounded(*aws: Any, timeout: float = 60) -> list[Any]:
    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*aws, return_exceptions=True))
