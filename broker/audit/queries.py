"""Filters → SQL for the two listings. Keyset paging on (ts, key), newest first, never OFFSET.

Fixed conditions are inlined as literals (`event = 'issued'`) so SQLite can use the partial indexes.
"""

# ruff: noqa: S608 -- SQL text is assembled only from module constants; every value is a bound parameter

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .records import EVENTS
from .rows import SELECT_EVENT, SELECT_ISSUANCE, Codec
from .store import AuditFilter

_LIVE = "(event = 'issued' AND live_until > ?)"


@dataclass(frozen=True)
class Listing:
    table: str
    columns: str
    # the unique tiebreaker after ts
    key: str
    # cursor kind: a cursor from one listing is refused by the other
    kind: str


ISSUANCES = Listing("issuances", SELECT_ISSUANCE, "id", "i")
EVENTS_LOG = Listing("events", SELECT_EVENT, "event_id", "e")


def page_query(
    listing: Listing,
    f: AuditFilter,
    codec: Codec,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    now: datetime,
) -> tuple[str, list[Any]]:
    """SQL and arguments for one page (`limit` rows; the caller asks one more to learn if another page exists)."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("caller_user", f.caller),
        ("role", f.role),
        ("namespace", f.namespace),
        ("cluster", f.cluster),
        ("event", f.event),
        ("id", f.token_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.event is not None and f.event not in EVENTS:
        raise ValueError(f"unknown event {f.event!r}")
    if f.since is not None:
        where.append("ts >= ?")
        args.append(codec.time(f.since))
    if f.until is not None:
        where.append("ts < ?")
        args.append(codec.time(f.until))
    if f.active is not None:
        if listing is not ISSUANCES:
            raise ValueError("the active filter applies to issued tokens, not to the event log")
        where.append(_LIVE if f.active else f"NOT {_LIVE}")
        args.append(codec.time(now))
    if after is not None:
        where.append(f"(ts, {listing.key}) < (?, ?)")
        args.extend((codec.time(after[0]), after[1]))
    sql = f"SELECT {listing.columns} FROM {listing.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY ts DESC, {listing.key} DESC LIMIT ?"
    args.append(limit)
    return sql, args
