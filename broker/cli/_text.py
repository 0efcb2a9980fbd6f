"""How the CLI lays out what it prints: times (RFC 3339 and "in 5m"), tables, label: value blocks. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from broker._kits.rfc3339 import format_time, parse_time


def time_in(value: Any) -> datetime | None:
    """A time the broker's API wrote, or None when the field is absent or not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def span(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not days and not hours:
        parts.append(f"{secs}s")
    return " ".join(parts)


def relative(moment: datetime, now: datetime, *, future: str = "in {}", past: str = "{} ago") -> str:
    delta = (moment - now).total_seconds()
    return future.format(span(delta)) if delta > 0 else past.format(span(delta))


def short_time(value: Any) -> str:
    moment = time_in(value)
    return format_time(moment) if moment is not None else "-"


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def clip(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def aligned(pairs: Iterable[tuple[str, str]], indent: str = "  ") -> list[str]:
    """`label: value` lines with the values in one column, however long the longest label; a value never
    breaks the block (whitespace, newlines included, is collapsed)."""
    pairs = [(label + ":", " ".join(str(value).split())) for label, value in pairs]
    width = max((len(label) for label, _ in pairs), default=0) + 1
    return [f"{indent}{label:<{width}}{value}" for label, value in pairs]
