"""Filters and keyset paging of both listings, on both backends."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta

import pytest
from audit_support import T0, issue, pending, sha
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.audit import AuditFilter, AuditRecord, InvalidCursor, Page, SecretBinding, SqlAuditStore

CALLERS = ("alice", "bob", "carol")
ROLES = ("deployer", "reader")
NAMESPACES = ("team-a", "team-b")
CLUSTERS = ("prod", "staging")


def dataset(n: int, seed: int = 7) -> list[AuditRecord]:
    """Finished issuances in every state, spread over ~n minutes, some sharing a timestamp."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        at = T0 + timedelta(minutes=rng.randrange(n // 2 + 1), microseconds=rng.choice((0, 0, 1)))
        state = rng.choice(
            ("issued", "issued", "issued", "revoked", "expired", "failed", "aborted", "denied", "pending")
        )
        issued = state in ("issued", "revoked", "expired")
        ttl = rng.choice((600, 3600, 86400))
        records.append(
            AuditRecord(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                time=at,
                event=state,  # type: ignore[arg-type]
                caller_user=rng.choice(CALLERS),
                caller_method="mtls",
                role=rng.choice(ROLES),
                namespace=rng.choice(NAMESPACES),
                cluster=rng.choice(CLUSTERS),
                jti=str(uuid.UUID(int=rng.getrandbits(128))) if issued else None,
                token_sha256=sha(str(i)) if issued else None,
                issued_at=at if issued else None,
                expires_at=at + timedelta(seconds=ttl) if issued else None,
                bound_secret=SecretBinding("team-a", f"s{i}") if issued else None,
                revoked_by="op" if state == "revoked" else None,
                revoked_at=at if state == "revoked" else None,
                # fixed here so the expected order of the event log (ts, event_id) is known
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
            )
        )
    return records


def matches(r: AuditRecord, f: AuditFilter, now: datetime) -> bool:
    return (
        (f.caller is None or r.caller_user == f.caller)
        and (f.role is None or r.role == f.role)
        and (f.namespace is None or r.namespace == f.namespace)
        and (f.cluster is None or r.cluster == f.cluster)
        and (f.event is None or r.event == f.event)
        and (f.token_id is None or r.id == f.token_id)
        and (f.since is None or r.time >= f.since)
        and (f.until is None or r.time < f.until)
        and (f.active is None or r.live_at(now) == f.active)
    )


def newest_first(records: list[AuditRecord], key: str = "id") -> list[str]:
    ordered = sorted(records, key=lambda r: (r.time, getattr(r, key)), reverse=True)
    return [getattr(r, key) for r in ordered]


async def all_pages(fetch, limit: int) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    items: list[AuditRecord] = []
    cursor = None
    for _ in range(10_000):
        page: Page = await fetch(cursor, limit)
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert len(page.items) == limit
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


@pytest.fixture
async def loaded(store: SqlAuditStore) -> list[AuditRecord]:
    records = dataset(240)
    await store.import_records(records)
    return records


FILTERS = [
    AuditFilter(),
    AuditFilter(caller="alice"),
    AuditFilter(role="reader"),
    AuditFilter(namespace="team-b"),
    AuditFilter(cluster="staging"),
    AuditFilter(event="revoked"),
    AuditFilter(event="issued", caller="bob", namespace="team-a"),
    AuditFilter(active=True),
    AuditFilter(active=False, role="deployer"),
    AuditFilter(since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=60)),
    AuditFilter(caller="carol", since=T0 + timedelta(minutes=10)),
    AuditFilter(caller="nobody"),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f)[12:60])
async def test_every_filter_on_issuances(
    store: SqlAuditStore, loaded: list[AuditRecord], f: AuditFilter
) -> None:
    now = T0 + timedelta(minutes=65)
    got = await all_pages(lambda c, n: store.query_issuances(f, c, n, now=now), 17)
    rows = [r for r in loaded if r.event != "denied"]
    assert [r.id for r in got] == newest_first([r for r in rows if matches(r, f, now)])


@pytest.mark.parametrize("f", [f for f in FILTERS if f.active is None], ids=lambda f: repr(f)[12:60])
async def test_every_filter_on_events(
    store: SqlAuditStore, loaded: list[AuditRecord], f: AuditFilter
) -> None:
    got = await all_pages(lambda c, n: store.query_events(f, c, n), 23)
    rows = [r for r in loaded if r.event != "pending"]
    assert [r.event_id for r in got] == newest_first([r for r in rows if matches(r, f, T0)], key="event_id")


async def test_active_means_live_at_now(store: SqlAuditStore) -> None:
    live = await issue(store, at=T0, ttl=3600)
    short = await issue(store, at=T0, ttl=600, revoke_at=T0 + timedelta(minutes=2))
    legacy = pending(at=T0)
    await store.begin_issuance(legacy)
    await store.complete_issuance(
        legacy.id, jti=None, token_sha256=sha("legacy"), issued_at=T0, expires_at=None
    )
    revoked = await issue(store, at=T0, ttl=3600)
    await store.mark_revoked(revoked.id, "op", T0)

    async def active(now: datetime) -> set[str]:
        return {r.id for r in (await store.query_issuances(AuditFilter(active=True), now=now)).items}

    assert await active(T0 + timedelta(minutes=1)) == {live.id, short.id, legacy.id}
    # past the revoke-at of the short revocable token, though its JWT exp is still ahead
    assert await active(T0 + timedelta(minutes=3)) == {live.id, legacy.id}
    assert await active(T0 + timedelta(days=365)) == {legacy.id}  # no exp: live until its Secret is deleted
    with pytest.raises(ValueError, match="active"):
        await store.query_events(AuditFilter(active=True))


async def test_paging_is_stable_under_concurrent_inserts(store: SqlAuditStore) -> None:
    before = [await issue(store, at=T0 + timedelta(seconds=i % 50), caller="alice") for i in range(120)]
    f = AuditFilter(caller="alice")
    seen: list[str] = []
    cursor = None
    writers = 0
    while True:
        page = await store.query_issuances(f, cursor, 11)
        seen.extend(r.id for r in page.items)
        # others keep issuing while this client pages (newer records, as a live broker would write)
        await asyncio.gather(
            *(issue(store, at=T0 + timedelta(hours=1, seconds=writers + k), caller="alice") for k in range(3))
        )
        writers += 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)), "a record appeared twice"
    assert set(seen) == {r.id for r in before}, "a record was skipped"


async def test_limits_and_cursors(store: SqlAuditStore, loaded: list[AuditRecord]) -> None:
    page = await store.query_issuances(AuditFilter(), limit=5)
    assert page.next_cursor
    with pytest.raises(ValueError):
        await store.query_issuances(AuditFilter(), limit=0)
    with pytest.raises(ValueError):
        await store.query_issuances(AuditFilter(), limit=1001)
    for bad in ("!!!", "bm9wZQ", "aTp4Onk", "a", page.next_cursor + "!"):
        with pytest.raises(InvalidCursor):
            await store.query_issuances(AuditFilter(), bad)
    with pytest.raises(InvalidCursor):
        # a cursor of one listing is refused by the other
        await store.query_events(AuditFilter(), page.next_cursor)
    with pytest.raises(ValueError, match="unknown event"):
        await store.query_issuances(AuditFilter(event="exploded"))


async def test_hypothesis_paging_equals_filtering(store: SqlAuditStore, loaded: list[AuditRecord]) -> None:
    """Any filter, any page size: the pages concatenate to exactly the filtered, ordered records."""
    rows = [r for r in loaded if r.event != "denied"]
    times = [None, *(T0 + timedelta(minutes=m) for m in (0, 7, 30, 61, 119, 200))]
    results: list[str] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        caller=st.sampled_from([None, *CALLERS]),
        role=st.sampled_from([None, *ROLES]),
        namespace=st.sampled_from([None, *NAMESPACES]),
        event=st.sampled_from([None, "issued", "revoked", "pending", "failed"]),
        active=st.sampled_from([None, True, False]),
        since=st.sampled_from(times),
        until=st.sampled_from(times),
        limit=st.integers(1, 40),
    )
    def check(caller, role, namespace, event, active, since, until, limit) -> None:  # type: ignore[no-untyped-def]
        f = AuditFilter(
            caller=caller,
            role=role,
            namespace=namespace,
            event=event,
            active=active,
            since=since,
            until=until,
        )
        now = T0 + timedelta(minutes=90)
        got = asyncio.run_coroutine_threadsafe(
            all_pages(lambda c, n: store.query_issuances(f, c, n, now=now), limit), loop
        ).result(timeout=60)
        assert [r.id for r in got] == newest_first([r for r in rows if matches(r, f, now)])
        results.append("ok")

    # hypothesis drives a synchronous function; the store lives on this loop, so run it from a thread
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(asyncio.to_thread(check), timeout=120)
    assert len(results) >= 10
