"""Opaque keyset cursors: the (time, key) of the last row of a page, never an offset.

A row inserted while a client pages sorts by its own time, so it cannot shift later pages: no duplicates and
no gaps for the rows that existed when paging started.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from .store import MAX_PAGE, InvalidCursor

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def encode_cursor(kind: str, moment: datetime, key: str) -> str:
    raw = f"{kind}:{to_micros(moment)}:{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        got_kind, micros, key = raw.split(":", 2)
        moment = from_micros(int(micros))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as err:
        raise InvalidCursor("malformed cursor") from err
    if got_kind != kind or not key or len(key) > 256 or not key.isprintable():
        raise InvalidCursor("cursor belongs to another listing")
    return moment, key


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    return limit
