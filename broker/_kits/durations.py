"""Token lifetimes as people write them: seconds ("900", 900) or Go durations ("15m", "1h30m", "1.5h").

Design choices (the HTTP layer and config.toml both go through here):
- Units are Go's `time.ParseDuration` units: ns, us/µs/μs, ms, s, m, h. No "d": Go has none, and a token that
  lives for days is what this broker exists to avoid.
- Kubernetes counts token lifetimes in whole seconds (`expirationSeconds`), so a sub-second unit is accepted only
  when the total is a whole number of seconds: "2000ms" is 2, "500ms" and "1500ms" are errors.
- Zero, negative values and anything above 2^32 seconds are errors: the TokenRequest API refuses more than 2^32
  (pkg/apis/authentication/validation) and a zero or negative lifetime means nothing.
- Every error is a ValueError whose message is safe to show the caller (it quotes at most a short prefix of
  the input and nothing else).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MAX_SECONDS = 2**32
# Longer input than this cannot be a sensible duration; refusing it early bounds the arithmetic below.
_MAX_TEXT = 64

_NANOS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN, as Go accepts
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_NANOS_PER_SECOND = 1_000_000_000

# ASCII digits only: str.isdigit()/int() would also take other scripts' digits.
_SECONDS = re.compile(r"[0-9]+")
_COMPONENT = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_HINT = 'use whole seconds (900) or a Go duration such as "15m" or "1h30m"'


def _show(text: str) -> str:
    short = text if len(text) <= 20 else text[:20] + "…"
    return repr(short)


def _check_range(seconds: int) -> int:
    if seconds <= 0:
        raise ValueError("duration must be positive")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration must not exceed {MAX_SECONDS} seconds")
    return seconds


def _parse_text(raw: str) -> int:
    text = raw.strip()
    if not text:
        raise ValueError(f"empty duration: {_HINT}")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"duration is too long: {_HINT}")
    if text[0] == "-":
        raise ValueError("duration must be positive")
    if _SECONDS.fullmatch(text):
        return _check_range(int(text))
    total = Fraction(0)
    pos = 0
    while pos < len(text):
        m = _COMPONENT.match(text, pos)
        if m is None:
            raise ValueError(f"invalid duration {_show(text)}: {_HINT}")
        number, unit = m.groups()
        total += Fraction(number) * _NANOS_PER_UNIT[unit]
        pos = m.end()
    seconds = total / _NANOS_PER_SECOND
    if seconds.denominator != 1:
        raise ValueError(f"duration {_show(text)} is not a whole number of seconds")
    return _check_range(int(seconds))


def parse_duration(value: str | int | float) -> int:
    """Seconds in a duration given as an int, a whole float, a numeric string or a Go duration string."""
    # bool is an int subclass; `ttl = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"a duration must be a number of seconds or a string; {_HINT}")
    if isinstance(value, int):
        return _check_range(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("duration must be a whole number of seconds")
        return _check_range(int(value))
    if isinstance(value, str):
        return _parse_text(value)
    raise ValueError(f"a duration must be a number of seconds or a string; {_HINT}")


def format_duration(seconds: int) -> str:
    """Compact Go-style text ("1h30m", "45s", "2h5s"); `parse_duration` reads it back. 0 is "0s"."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValueError("seconds must be an integer")
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs:
        parts.append(f"{secs}s")
    return "".join(parts)
