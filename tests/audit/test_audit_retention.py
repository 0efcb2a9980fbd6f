"""Retention and the never-store-the-token guarantee, on both backends."""

from __future__ import annotations

import re
from datetime import timedelta

from audit_support import T0, SettingsFactory, issue, pending, sha

from broker.app.stores import make_sql_store
from broker.audit import AuditFilter, SqlAuditStore

DAY = timedelta(days=1)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


async def test_retention_removes_old_finished_records_only(make_settings: SettingsFactory) -> None:
    old = T0 - 100 * DAY
    async with make_sql_store(make_settings(retention_days=90), clock=lambda: T0) as store:
        expired_unbound = await issue(store, at=old, secret=False)
        revoked = await issue(store, at=old)
        await store.mark_revoked(revoked.id, "op", old + DAY)
        denial = await store.record_denial(pending(at=old, event="denied", reason="no grant"))
        failed = pending(at=old)
        await store.begin_issuance(failed)
        await store.fail_issuance(failed.id, "upstream 500", at=old)
        # kept: pending (start-up repair must see it), a bound Secret the janitor has not deleted, a live token
        stuck = pending(at=old)
        await store.begin_issuance(stuck)
        uncleaned = await issue(store, at=old)
        legacy = pending(at=old)
        await store.begin_issuance(legacy)
        await store.complete_issuance(
            legacy.id, jti=None, token_sha256=sha("l"), issued_at=old, expires_at=None
        )
        recent = await issue(store, at=T0 - DAY)

        removed = await store.apply_retention(T0)
        remaining = {r.id for r in (await store.query_issuances(AuditFilter(), limit=100)).items}
        assert remaining == {stuck.id, uncleaned.id, legacy.id, recent.id}
        assert (
            expired_unbound.id not in remaining and revoked.id not in remaining and failed.id not in remaining
        )
        events = (await store.query_events(AuditFilter(), limit=100)).items
        assert [e.id for e in events] == [recent.id]  # every event older than 90 days is gone
        assert denial.id not in {e.id for e in events}
        assert (
            removed == 7 + 3
        )  # events: 4 issued, revoked, denied, failed; issuances: unbound, revoked, failed
        assert await store.apply_retention(T0) == 0


async def test_retention_zero_keeps_everything(make_settings: SettingsFactory) -> None:
    async with make_sql_store(make_settings(retention_days=0), clock=lambda: T0) as store:
        await issue(store, at=T0 - 3650 * DAY, secret=False)
        assert await store.apply_retention(T0) == 0
        assert len((await store.query_events(AuditFilter())).items) == 1


async def test_retention_in_chunks(store: SqlAuditStore) -> None:
    records = [pending(at=T0 - 200 * DAY, event="denied") for _ in range(4500)]
    await store.import_records(records)
    assert await store.apply_retention(T0) == 4500
    assert (await store.query_events(AuditFilter())).items == ()


async def test_no_column_ever_holds_the_token(store: SqlAuditStore) -> None:
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLWJ5dGVz"
    rec = pending(context={"note": f"pasted {token} by mistake"}, user_agent=f"kubectl ({token})")
    await store.begin_issuance(rec)
    await store.complete_issuance(
        rec.id, jti="5f0c-jti", token_sha256=sha(token), issued_at=T0, expires_at=T0 + timedelta(hours=1)
    )
    await store.record_denial(pending(event="denied", reason=f"bad bearer {token}"))
    await store.mark_revoked(rec.id, "op", T0, reason=f"leaked: {token}")
    for table in ("issuances", "events"):
        rows = await store.backend.fetch(f"SELECT * FROM {table}")
        assert rows
        for row in rows:
            for value in tuple(row):
                text = str(value)
                assert token not in text and JWT.search(text) is None, (table, text)
    stored = await store.get_issuance(rec.id)
    assert stored is not None and stored.token_sha256 == sha(token)
