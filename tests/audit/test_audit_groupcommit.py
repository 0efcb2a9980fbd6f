"""Group commit and failing closed, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from audit_support import PG_DSN, T0, SettingsFactory, gather_bounded, issue, pending, sha

from broker.app.stores import make_sql_store
from broker.audit import AuditFilter, SqlAuditStore
from broker.domain.errors import BrokerError
from broker.settings import AuditSettings


async def test_500_concurrent_writers_share_transactions(store: SqlAuditStore) -> None:
    before = store.stats.transactions
    records = [pending(caller=f"ci-{i % 7}") for i in range(500)]
    results = await gather_bounded(*(store.begin_issuance(r) for r in records))
    assert results == [None] * 500
    transactions = store.stats.transactions - before
    assert 1 <= transactions < 500, transactions
    assert store.stats.largest_batch > 1
    # every one of them is durable and readable
    assert len(await store.pending_issuances(T0, limit=1000)) == 500


async def test_concurrent_issuances_end_to_end(store: SqlAuditStore) -> None:
    events = await gather_bounded(*(issue(store, caller=f"ci-{i % 5}") for i in range(200)))
    assert all(e.event == "issued" for e in events)
    page = await store.query_events(AuditFilter(event="issued"), limit=1000)
    assert len(page.items) == 200


@asynccontextmanager
async def held_write_lock(settings: AuditSettings) -> AsyncIterator[None]:
    """Another session holds the write lock: SQLite BEGIN EXCLUSIVE on the file, PG LOCK TABLE."""
    if settings.backend == "sqlite":
        conn = sqlite3.connect(settings.sqlite_path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        pg = await asyncpg.connect(
            PG_DSN, timeout=5, server_settings={"search_path": settings.postgres_schema}
        )
        tx = pg.transaction()
        await tx.start()
        await pg.execute("LOCK TABLE issuances, events IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await tx.rollback()
            await pg.close()


async def test_a_blocked_store_fails_every_waiter_with_503_then_recovers(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(write_timeout_seconds=1.0, sqlite_busy_timeout_ms=200)
    async with make_sql_store(settings, clock=lambda: T0) as store:
        records = [pending() for _ in range(20)]
        async with held_write_lock(settings):
            # the bound: each waiter gives up after the 1 s write timeout, so this cannot hang
            results = await gather_bounded(*(store.begin_issuance(r) for r in records), timeout=30)
        assert all(isinstance(r, BrokerError) and r.status == 503 for r in results), results
        assert all(r.detail == "audit store unavailable" and r.retry_after for r in results)  # type: ignore[union-attr]
        # none of them was committed, and the store works again once the lock is gone
        assert await store.pending_issuances(T0) == []
        await store.begin_issuance(records[0])
        assert [r.id for r in await store.pending_issuances(T0)] == [records[0].id]


async def test_full_queue_fails_fast(make_settings: SettingsFactory) -> None:
    async with make_sql_store(make_settings(queue_size=1), clock=lambda: T0) as store:
        results = await gather_bounded(*(store.begin_issuance(pending()) for _ in range(10)))
        refused = [r for r in results if isinstance(r, BrokerError)]
        assert refused and all(r.status == 503 and "queue is full" in r.reason for r in refused)
        assert len(await store.pending_issuances(T0)) == 10 - len(refused)


async def test_closed_store_refuses_writes(store: SqlAuditStore) -> None:
    await store.close()
    with pytest.raises(BrokerError) as err:
        await store.begin_issuance(pending())
    assert err.value.status == 503


async def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    gone = tmp_path / "deleted"
    settings = AuditSettings(sqlite_path=gone / "audit.sqlite3", connect_timeout_seconds=2)
    store = make_sql_store(settings)
    with pytest.raises(BrokerError) as err:
        await asyncio.wait_for(store.open(), 10)
    assert err.value.status == 503 and "does not exist" in err.value.reason
    with pytest.raises(BrokerError):
        await store.begin_issuance(pending())


@pytest.mark.postgres
async def test_postgres_on_a_wrong_port_is_unavailable_quickly() -> None:
    settings = AuditSettings(
        backend="postgres",
        postgres_dsn="postgresql://postgres@127.0.0.1:1/test",
        connect_timeout_seconds=1,
    )
    store = make_sql_store(settings)
    with pytest.raises(BrokerError) as err:
        # bounded by the connect timeout; wait_for keeps a regression from hanging the suite
        await asyncio.wait_for(store.open(), 10)
    assert err.value.status == 503 and "PostgreSQL" in err.value.reason
    with pytest.raises(BrokerError):
        await store.ping()


async def test_conflicts_inside_one_batch_have_one_winner(store: SqlAuditStore) -> None:
    rec = pending()
    # the same id begun twice in one batch: one is recorded, the other refused
    results = await gather_bounded(store.begin_issuance(rec), store.begin_issuance(rec))
    assert sorted(type(r).__name__ for r in results) == ["BrokerError", "NoneType"]

    # a completion racing an abort (start-up repair of another replica): exactly one of them applies
    completion, abort = await gather_bounded(
        store.complete_issuance(rec.id, jti="j", token_sha256=sha("t"), issued_at=T0, expires_at=T0),
        store.fail_issuance(rec.id, "repair", event="aborted"),
    )
    stored = await store.get_issuance(rec.id)
    assert stored is not None
    if isinstance(completion, BrokerError):
        assert stored.event == "aborted" and abort is not None
    else:
        assert stored.event == "issued" and abort is None

    # two operators revoking the same token at once: one revocation event
    event = await issue(store)
    first, second = await gather_bounded(
        store.mark_revoked(event.id, "op-1", T0), store.mark_revoked(event.id, "op-2", T0)
    )
    assert [r is None for r in (first, second)].count(True) == 1
    history = (await store.query_events(AuditFilter(token_id=event.id))).items
    assert [e.event for e in history].count("revoked") == 1
