"""The issuance lifecycle on both backends: write-ahead, completion, failure, denial, revocation, expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

import pytest
from audit_support import T0, issue, pending, sha

from broker.audit import AuditFilter, SecretBinding, SqlAuditStore
from broker.domain.errors import BrokerError


async def test_pending_record_is_committed_before_completion(store: SqlAuditStore) -> None:
    rec = pending()
    await store.begin_issuance(rec)

    # visible to another reader (start-up repair) before the TokenRequest would even be sent
    stored = await store.get_issuance(rec.id)
    assert stored is not None and stored.event == "pending"
    assert stored.caller_user == "alice" and stored.caller_groups == ("ci", "team-a")
    assert stored.context == rec.context and stored.audiences == rec.audiences
    assert stored.jti is None and stored.token_sha256 is None
    assert [r.id for r in await store.pending_issuances(T0)] == [rec.id]
    # pending is a state, not a decision: no event yet
    assert (await store.query_events(AuditFilter(token_id=rec.id))).items == ()


async def test_complete_turns_pending_into_issued_and_logs_it(store: SqlAuditStore) -> None:
    rec = pending()
    await store.begin_issuance(rec)
    jti = str(uuid.uuid4())
    secret = SecretBinding("team-a", "tb-bound-1", "uid-1")
    issued_at = T0 + timedelta(seconds=1)
    event = await store.complete_issuance(
        rec.id,
        jti=jti,
        token_sha256=sha("the-token"),
        issued_at=issued_at,
        expires_at=issued_at + timedelta(minutes=15),
        bound_secret=secret,
        ttl_granted=900,
    )
    assert event.event == "issued" and event.event_id and event.time == issued_at and event.status == 201

    stored = await store.get_issuance(rec.id)
    assert stored is not None
    assert stored.event == "issued" and stored.jti == jti and stored.bound_secret == secret
    assert stored.time == T0  # the issuance keeps the time it began
    assert stored.expires_at == issued_at + timedelta(minutes=15)
    assert await store.find_by_jti(jti) == stored
    assert await store.pending_issuances(T0 + timedelta(days=1)) == []

    log = (await store.query_events(AuditFilter(token_id=rec.id))).items
    assert [e.event for e in log] == ["issued"]
    assert log[0] == event


async def test_complete_refuses_anything_not_pending(store: SqlAuditStore) -> None:
    event = await issue(store)
    with pytest.raises(BrokerError) as twice:
        await store.complete_issuance(
            event.id, jti="j", token_sha256=sha("x"), issued_at=T0, expires_at=T0 + timedelta(hours=1)
        )
    assert twice.value.status == 503 and "issued" in twice.value.reason

    # start-up repair of another replica aborted it: the token must not be handed out
    rec = pending()
    await store.begin_issuance(rec)
    assert await store.fail_issuance(rec.id, "repaired at start-up", event="aborted")
    with pytest.raises(BrokerError) as aborted:
        await store.complete_issuance(
            rec.id, jti="j2", token_sha256=sha("y"), issued_at=T0, expires_at=T0 + timedelta(hours=1)
        )
    assert aborted.value.status == 503 and "aborted" in aborted.value.reason

    with pytest.raises(BrokerError) as unknown:
        await store.complete_issuance(
            str(uuid.uuid4()), jti="j3", token_sha256=sha("z"), issued_at=T0, expires_at=None
        )
    assert unknown.value.status == 503


async def test_complete_refuses_a_token_in_place_of_its_digest(store: SqlAuditStore) -> None:
    rec = pending()
    await store.begin_issuance(rec)
    with pytest.raises(ValueError, match="digest"):
        await store.complete_issuance(
            rec.id,
            jti="j",
            token_sha256="eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            issued_at=T0,
            expires_at=None,
        )


async def test_duplicate_begin_is_refused(store: SqlAuditStore) -> None:
    rec = pending()
    await store.begin_issuance(rec)
    with pytest.raises(BrokerError) as err:
        await store.begin_issuance(rec)
    assert err.value.status == 503 and "already recorded" in err.value.reason


@pytest.mark.parametrize("outcome", ["failed", "aborted"])
async def test_fail_and_abort(store: SqlAuditStore, outcome: Literal["failed", "aborted"]) -> None:
    rec = pending()
    await store.begin_issuance(rec)
    secret = SecretBinding("team-a", "tb-x", "")
    at = T0 + timedelta(seconds=3)
    event = await store.fail_issuance(
        rec.id,
        "TokenRequest: 500 etcdserver: leader changed",
        event=outcome,
        at=at,
        status=502,
        bound_secret=secret,
    )
    assert event is not None and event.event == outcome and event.time == at and event.status == 502
    stored = await store.get_issuance(rec.id)
    assert stored is not None and stored.event == outcome and stored.reason.startswith("TokenRequest")
    assert stored.bound_secret == secret
    # only a pending record can fail; a second attempt changes nothing
    assert await store.fail_issuance(rec.id, "again", event=outcome) is None
    assert [e.event for e in (await store.query_events(AuditFilter(token_id=rec.id))).items] == [outcome]


async def test_denial_is_an_event_without_issuance(store: SqlAuditStore) -> None:
    denial = pending(event="denied", reason="no grant for role deployer in namespace kube-system", status=403)
    stored = await store.record_denial(denial)
    assert stored.event_id and stored.event == "denied"
    assert await store.get_issuance(denial.id) is None
    page = await store.query_events(AuditFilter(event="denied"))
    assert [e.id for e in page.items] == [denial.id]
    assert page.items[0].reason.startswith("no grant") and page.items[0].status == 403
    with pytest.raises(ValueError):
        await store.record_denial(pending())


async def test_revocation(store: SqlAuditStore) -> None:
    event = await issue(store)
    at = T0 + timedelta(minutes=1)
    revoked = await store.mark_revoked(event.id, "operator:bob", at, reason="leaked in a build log")
    assert (
        revoked is not None and revoked.event == "revoked" and revoked.time == at and revoked.status is None
    )
    stored = await store.get_issuance(event.id)
    assert stored is not None
    assert (stored.event, stored.revoked_by, stored.revoked_at) == ("revoked", "operator:bob", at)
    assert stored.reason == "leaked in a build log"
    # a second revocation, a pending or an unknown issuance: nothing to revoke
    assert await store.mark_revoked(event.id, "operator:bob", at) is None
    rec = pending()
    await store.begin_issuance(rec)
    assert await store.mark_revoked(rec.id, "operator:bob", at) is None
    assert await store.mark_revoked(str(uuid.uuid4()), "operator:bob", at) is None
    history = (await store.query_events(AuditFilter(token_id=event.id))).items
    assert [e.event for e in history] == ["revoked", "issued"]


async def test_pending_listing_for_startup_repair(store: SqlAuditStore) -> None:
    old = pending(at=T0)
    older = pending(at=T0 - timedelta(minutes=5))
    fresh = pending(at=T0 + timedelta(minutes=5))
    for rec in (old, older, fresh):
        await store.begin_issuance(rec)
    await issue(store, at=T0 - timedelta(minutes=10))
    assert [r.id for r in await store.pending_issuances(T0)] == [older.id, old.id]
    assert [r.id for r in await store.pending_issuances(T0, limit=1)] == [older.id]
    assert len(await store.pending_issuances(T0 + timedelta(hours=1))) == 3


async def test_due_for_cleanup_and_expiry(store: SqlAuditStore) -> None:
    # a revocable 2-minute token: exp is the 10-minute TokenRequest floor, revoke_at the asked TTL
    short = await issue(store, at=T0, ttl=600, revoke_at=T0 + timedelta(minutes=2))
    normal = await issue(store, at=T0, ttl=900)
    unbound = await issue(store, at=T0, ttl=60, secret=False)
    revoked = await issue(store, at=T0, ttl=60)
    await store.mark_revoked(revoked.id, "op", T0)
    still_pending = pending(at=T0 - timedelta(hours=1))
    await store.begin_issuance(still_pending)

    assert await store.due_for_cleanup(T0 + timedelta(minutes=1)) == []
    due = await store.due_for_cleanup(T0 + timedelta(minutes=2))
    assert [r.id for r in due] == [short.id]
    due = await store.due_for_cleanup(T0 + timedelta(hours=1))
    assert [r.id for r in due] == [short.id, normal.id]  # soonest first; no unbound, revoked or pending
    assert [r.id for r in await store.due_for_cleanup(T0 + timedelta(hours=1), limit=1)] == [short.id]

    marked = await store.mark_expired(
        [short.id, short.id, unbound.id, revoked.id], at=T0 + timedelta(minutes=2)
    )
    assert sorted(r.id for r in marked) == sorted([short.id, unbound.id])
    assert all(r.event == "expired" for r in marked)
    assert [r.id for r in await store.due_for_cleanup(T0 + timedelta(hours=1))] == [normal.id]
    stored = await store.get_issuance(short.id)
    assert stored is not None and stored.event == "expired" and stored.revoke_at == T0 + timedelta(minutes=2)
    assert await store.mark_expired([]) == []


async def test_context_is_bounded_and_free_text_is_scrubbed(store: SqlAuditStore) -> None:
    context = {f"k{i:02d}": "v" * 1000 for i in range(40)}
    rec = pending(context=context, user_agent="curl " + "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
    await store.begin_issuance(rec)
    stored = await store.get_issuance(rec.id)
    assert stored is not None
    assert len(stored.context) == 16 and all(len(v) <= 256 for v in stored.context.values())
    assert "eyJ" not in stored.user_agent and "[redacted-jwt]" in stored.user_agent


async def test_ping(store: SqlAuditStore) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(BrokerError) as err:
        await store.ping()
    assert err.value.status == 503
