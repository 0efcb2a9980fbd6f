"""Listing the audit trail: issued tokens (their current state) and the event log, a page at a time or as one
export, each narrowed to what the caller may see (access.py). No aiohttp here: the HTTP edge renders them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from broker.audit.records import utc_now
from broker.audit.store import MAX_PAGE, AuditStore, InvalidCursor
from broker.domain.errors import bad_request
from broker.domain.identity import Caller
from broker.domain.records import AuditRecord, Page

from .access import Visibility, matches, owns
from .ports import RecordQuery

# records per store query when streaming an export
EXPORT_PAGE = 500
# a non-operator's listing drops rows of a namesake who authenticated another way; refill a short page from
# at most this many further store pages (the cursor stays exact either way, a page may just be shorter)
_OWNER_REFILLS = 8

PageFetch = Callable[[str | None, int], Awaitable[Page]]
_EMPTY = Page((), None)


class Records:
    """Implements RecordsPort over an audit store."""

    def __init__(
        self,
        store: AuditStore,
        visibility: Visibility,
        *,
        clock: Callable[[], datetime] = utc_now,
        export_page: int = EXPORT_PAGE,
    ) -> None:
        self._store = store
        self._visibility = visibility
        self._clock = clock
        self._export_page = max(1, min(export_page, MAX_PAGE))

    async def list_tokens(self, caller: Caller, query: RecordQuery) -> Page:
        return await self._tokens(caller, query, self._clock())

    async def list_events(self, caller: Caller, query: RecordQuery) -> Page:
        return await self._events(caller, query)

    def export_tokens(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        now = self._clock()  # one `active` cut-off for the whole export
        return self._export(lambda q: self._tokens(caller, q, now), query, max_records)

    def export_events(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        return self._export(lambda q: self._events(caller, q), query, max_records)

    async def _export(
        self, page_of: Callable[[RecordQuery], Awaitable[Page]], query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        sent, cursor = 0, query.cursor
        while sent < max_records:
            page = await page_of(
                replace(query, cursor=cursor, limit=min(self._export_page, max_records - sent))
            )
            for record in page.items:
                yield record
            sent += len(page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _tokens(self, caller: Caller, query: RecordQuery, now: datetime) -> Page:
        if query.jti is not None:
            record = await self._store.find_by_jti(query.jti)
            if record is None or not self._visibility.sees(caller, record):
                return _EMPTY
            return Page((record,), None) if matches(record, query.filter, now) else _EMPTY
        scoped = self._visibility.scope(caller, query.filter)
        if scoped is None:
            return _EMPTY

        async def fetch(cursor: str | None, limit: int) -> Page:
            return await self._store.query_issuances(scoped, cursor, limit, now=now)

        return await self._page(caller, fetch, query)

    async def _events(self, caller: Caller, query: RecordQuery) -> Page:
        f = query.filter
        if query.jti is not None:
            # from a Kubernetes audit line (credential-id JTI=…) to the history of that issuance
            record = await self._store.find_by_jti(query.jti)
            if record is None or not self._visibility.sees(caller, record):
                return _EMPTY
            if f.token_id not in (None, record.id):
                return _EMPTY
            f = replace(f, token_id=record.id)
        scoped = self._visibility.scope(caller, f)
        if scoped is None:
            return _EMPTY

        async def fetch(cursor: str | None, limit: int) -> Page:
            return await self._store.query_events(scoped, cursor, limit)

        return await self._page(caller, fetch, query)

    async def _page(self, caller: Caller, fetch: PageFetch, query: RecordQuery) -> Page:
        try:
            if self._visibility.is_operator(caller):
                return await fetch(query.cursor, query.limit)
            # the store filters on the user name only: drop a namesake's rows authenticated another way
            items: list[AuditRecord] = []
            cursor = query.cursor
            for _ in range(_OWNER_REFILLS):
                page = await fetch(cursor, query.limit - len(items))
                items.extend(r for r in page.items if owns(caller, r))
                cursor = page.next_cursor
                if cursor is None or len(items) >= query.limit:
                    break
            return Page(tuple(items), cursor)
        except InvalidCursor:
            raise bad_request("the cursor is not valid for this listing; start again without it") from None
