"""The hash chain over the event log, on both backends: written in commit order under group commit and with
several replicas on one database; `verify_chain` finds every kind of tampering; retention keeps it verifiable."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from audit_support import T0, SettingsFactory, gather_bounded, issue, pending, sha
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.app.stores import make_sql_store
from broker.audit import SqlAuditStore
from broker.audit import migrations as migrations_module
from broker.audit.backend import Tx
from broker.audit.chain import GENESIS, emitted_hash, link_hash, read_after, read_link
from broker.audit.checkpoints import Checkpointer, read_checkpoints, sign
from broker.audit.rows import EVENT_COLUMNS
from broker.audit.verify import BreakKind, verify_chain


async def sql(store: SqlAuditStore, statement: str, args: list[Any] | None = None) -> None:
    """Tampering behind the broker's back (through its own writer connection, so SQLite is not locked)."""

    async def run(tx: Tx) -> None:
        await tx.execute(statement, args or [])

    await store.in_writer(run)


async def some_events(store: SqlAuditStore, count: int = 6) -> None:
    """Every kind of event, several written concurrently so batches hold more than one."""
    issued = await gather_bounded(*(issue(store, at=T0 + timedelta(seconds=i)) for i in range(count)))
    await store.mark_revoked(issued[0].id, "op", T0 + timedelta(minutes=1), "leaked")
    await store.mark_expired([issued[1].id], T0 + timedelta(minutes=2))
    await store.record_denial(pending(event="denied", reason="no grant", status=403))
    failing = pending()
    await store.begin_issuance(failing)
    await store.fail_issuance(failing.id, "upstream 500", status=502)


async def test_every_event_is_chained_in_seq_order(store: SqlAuditStore) -> None:
    await some_events(store)
    events = await read_after(store.backend, store.codec, 0, 1000)
    assert [e.seq for e in events] == list(range(1, 11))
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert link_hash(event.record, event.seq, event.prev_hash) == event.hash
        # what a sink emits is enough for a receiver to recompute the hash
        assert emitted_hash(event.as_dict()) == event.hash
    head = await read_link(store.backend, "head")
    assert (head.seq, head.hash) == (10, events[-1].hash)
    result = await verify_chain(store.backend)
    assert result.ok and result.events == 10


AWKWARD = [
    "plain",
    'quotes " and \\ backslash',
    "ünïcødé — ✓ 日本語 🚀",
    "tab\tnew\nline\rreturn",
    "\x01\x1f control",
    "x" * 256,
]


async def test_what_is_read_back_hashes_as_written(store: SqlAuditStore) -> None:
    """The hash is computed from the record in memory, verified from the row read back: every value must
    round-trip through both databases exactly."""
    for i, text in enumerate(AWKWARD):
        await issue(
            store,
            at=T0 + timedelta(microseconds=i * 7 + 1),
            caller=text[:60],
            user_agent=text,
            context={text[:60]: text, "n": str(i)},
            caller_groups=(text[:30], "g"),
        )
        await store.record_denial(pending(event="denied", reason=text, source_address="::1", status=403))
    assert (await verify_chain(store.backend)).ok


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        ("UPDATE events SET reason = 'nothing to see' WHERE seq = 4", BreakKind.EDITED, 4),
        ("UPDATE events SET caller_user = 'mallory' WHERE seq = 7", BreakKind.EDITED, 7),
        ("DELETE FROM events WHERE seq = 5", BreakKind.MISSING, 5),
        ("DELETE FROM events WHERE seq >= 9", BreakKind.HEAD, 9),
        # reorder: rows 3 and 6 swap places
        ("swap 3 6", BreakKind.LINK, 3),
        ("UPDATE events SET seq = NULL WHERE seq = 10", BreakKind.HEAD, 10),
    ],
)
async def test_verify_finds_the_first_break(
    store: SqlAuditStore, tamper: str, kind: BreakKind, seq: int
) -> None:
    await some_events(store)
    assert (await verify_chain(store.backend)).ok
    if tamper == "swap 3 6":
        # the unique index on seq: one row out of the way first
        await sql(store, "UPDATE events SET seq = -3 WHERE seq = 3")
        await sql(store, "UPDATE events SET seq = 3 WHERE seq = 6")
        await sql(store, "UPDATE events SET seq = 6 WHERE seq = -3")
    else:
        await sql(store, tamper)
    result = await verify_chain(store.backend)
    assert result.first_break is not None
    assert (result.first_break.kind, result.first_break.seq) == (kind, seq)


async def test_an_inserted_row_outside_the_chain_is_found(store: SqlAuditStore) -> None:
    await some_events(store)
    [event] = await read_after(store.backend, store.codec, 0, 1)
    forged = store.codec.event_values(event.record, str(uuid.uuid4()))
    columns = ", ".join(EVENT_COLUMNS)
    await sql(store, f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * len(forged))})", forged)
    result = await verify_chain(store.backend)
    assert result.first_break is not None and result.first_break.kind is BreakKind.UNCHAINED


async def rewrite_from(store: SqlAuditStore, seq: int) -> None:
    """What an attacker with database access does: edit an event, then recompute every hash after it."""
    await sql(store, "UPDATE events SET reason = 'rewritten' WHERE seq = ?", [seq])
    events = await read_after(store.backend, store.codec, seq - 1, 1000)
    prev = events[0].prev_hash
    for event in events:
        digest = link_hash(event.record, event.seq, prev)
        await sql(store, "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, digest, event.seq])
        prev = digest
    await sql(store, "UPDATE audit_chain SET hash = ? WHERE name = 'head'", [prev])


async def test_a_signed_checkpoint_catches_a_rewritten_chain(store: SqlAuditStore) -> None:
    key = Ed25519PrivateKey.generate()
    await some_events(store)
    written = await Checkpointer(store, key, clock=lambda: T0).checkpoint_once()
    assert written is not None and written.seq == 10
    # nothing new: no second checkpoint
    assert await Checkpointer(store, key, clock=lambda: T0).checkpoint_once() is None
    await issue(store)
    assert (await verify_chain(store.backend, [key.public_key()])).checkpoints_checked == 1

    await rewrite_from(store, 3)
    # the chain alone cannot tell: it is consistent again
    assert (await verify_chain(store.backend)).ok
    result = await verify_chain(store.backend, [key.public_key()])
    assert result.first_break is not None
    assert (result.first_break.kind, result.first_break.seq) == (BreakKind.CHECKPOINT, 10)


async def test_a_forged_checkpoint_fails_its_signature(store: SqlAuditStore) -> None:
    key, attacker = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    await some_events(store)
    await Checkpointer(store, key, clock=lambda: T0).checkpoint_once()
    await rewrite_from(store, 2)
    # the attacker replaces the checkpoint with one over the rewritten head, keeping the real key's id
    head = await read_link(store.backend, "head")
    forged = sign(attacker, head, T0)
    [real] = await read_checkpoints(store.backend)
    await sql(
        store,
        "UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE seq = ?",
        [forged.hash, forged.signature, real.seq],
    )
    result = await verify_chain(store.backend, [key.public_key()])
    assert result.first_break is not None and result.first_break.kind is BreakKind.SIGNATURE


async def test_retention_trims_a_prefix_and_the_rest_still_verifies(make_settings: SettingsFactory) -> None:
    now = T0 + timedelta(days=100)
    async with make_sql_store(make_settings(retention_days=90), clock=lambda: now) as store:
        for i in range(5):
            await store.record_denial(pending(event="denied", at=T0 + timedelta(minutes=i)))
        young = await store.record_denial(pending(event="denied", at=now))
        # an old event committed after a young one stays: the chain is trimmed as a prefix only
        await store.record_denial(pending(event="denied", at=T0))
        assert await store.apply_retention(now) == 5
        anchor = await read_link(store.backend, "anchor")
        assert anchor.seq == 5
        remaining = await read_after(store.backend, store.codec, 0, 100)
        assert [e.seq for e in remaining] == [6, 7] and remaining[0].record.event_id == young.event_id
        result = await verify_chain(store.backend)
        assert result.ok and result.events == 2 and result.anchor == anchor


async def test_replicas_on_one_database_extend_one_chain_in_commit_order(
    make_settings: SettingsFactory,
) -> None:
    """Four stores (replicas) write at once; a reader polling like a sink's cursor never sees a gap: a
    higher seq is never visible before a lower one is."""
    settings = make_settings(sqlite_busy_timeout_ms=30_000)
    stores = [make_sql_store(settings, clock=lambda: T0) for _ in range(4)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(s.open() for s in stores))
    stop = asyncio.Event()
    gaps: list[tuple[int, int]] = []

    async def follow() -> int:
        cursor = 0
        while not stop.is_set() or cursor < 4 * 60:
            events = await read_after(stores[0].backend, stores[0].codec, cursor, 500)
            for event in events:
                if event.seq != cursor + 1:
                    gaps.append((cursor, event.seq))
                cursor = event.seq
            await asyncio.sleep(0)
            if stop.is_set() and not events:
                break
        return cursor

    async def write(store: SqlAuditStore, n: int) -> None:
        for batch in range(6):
            await gather_bounded(*(issue(store, caller=f"r{n}-{batch}-{i}") for i in range(5)))

    try:
        reader = asyncio.create_task(follow())
        await gather_bounded(*(write(s, n) for n, s in enumerate(stores)), timeout=120)
        stop.set()
        assert await asyncio.wait_for(reader, 60) == 4 * 6 * 5
        assert gaps == []
        result = await verify_chain(stores[0].backend)
        assert result.ok and result.events == 120
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_events_written_before_the_chain_are_backfilled(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    v1 = migrations_module.MIGRATIONS[:1]
    monkeypatch.setattr(migrations_module, "MIGRATIONS", v1)
    monkeypatch.setattr(migrations_module, "LATEST", 1)
    old = make_sql_store(settings, clock=lambda: T0)
    await old.backend.connect()
    records = [
        pending(event="denied", at=T0 + timedelta(seconds=s), event_id=str(uuid.uuid4())) for s in (3, 1, 2)
    ]
    async with old.backend.transaction() as tx:
        for record in records:
            values = old.codec.event_values(record)
            await tx.execute(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(values))})",
                values,
            )
    await old.backend.close()
    monkeypatch.undo()

    async with make_sql_store(settings, clock=lambda: T0) as store:
        events = await read_after(store.backend, store.codec, 0, 10)
        # numbered in time order
        assert [e.record.time for e in events] == sorted(r.time for r in records)
        await issue(store)  # and the chain goes on from there
        result = await verify_chain(store.backend)
        assert result.ok and result.events == 4


async def test_the_token_digest_is_in_the_chain(store: SqlAuditStore) -> None:
    issued = await issue(store)
    [event] = await read_after(store.backend, store.codec, 0, 1)
    assert event.as_dict()["token_sha256"] == issued.token_sha256 == sha(f"token-{issued.id}")
