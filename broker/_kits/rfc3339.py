"""RFC 3339 times, written and read in one place: UTC with a trailing Z out, a zone required in.

Precision is the writer's choice: seconds where Kubernetes writes metav1.Time (token expiry, ExecCredential),
microseconds where records are ordered (the audit trail, Lease MicroTime), milliseconds in log lines.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal, overload

Precision = Literal["seconds", "milliseconds", "microseconds"]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


@overload
def format_time(moment: datetime, precision: Precision = "seconds") -> str: ...
@overload
def format_time(moment: None, precision: Precision = "seconds") -> None: ...
def format_time(moment: datetime | None, precision: Precision = "seconds") -> str | None:
    """`2024-05-01T12:00:00Z` (or with .123 / .123456): UTC, truncated to `precision`. None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """An RFC 3339 time with a zone ("2024-05-01T12:00:00Z", "…+02:00", up to nanoseconds); nothing looser.

    ValueError otherwise. Digits beyond microseconds are dropped: datetime holds no more.
    """
    if _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 time with a zone, such as 2024-05-01T12:00:00Z")
    text = value.upper().replace("Z", "+00:00")
    whole, dot, rest = text.partition(".")
    if dot:
        # fromisoformat (3.11) takes at most microseconds: drop nanosecond digits
        digits = rest[: len(rest) - 6]
        text = f"{whole}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    return datetime.fromisoformat(text)
