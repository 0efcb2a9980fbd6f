"""Token buckets, one per key, in bounded memory. Pure: the clock is injected, nothing here does I/O.

A bucket holds up to `burst` tokens and gains `per_minute / 60` per second; a request takes one token or is
refused with the time until one will be there. A bucket that has refilled completely is indistinguishable from
a new one, so it is dropped: memory holds only the callers that were active within their refill time, and a hard
cap (least recently used first) bounds it even under a flood of distinct callers.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_minute > 0 or not math.isfinite(self.per_minute):
            raise ValueError("per_minute must be a positive number")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill up."""
        return self.burst / self.per_second


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # seconds until the next token (0 when allowed); the HTTP layer rounds it up for Retry-After
    retry_after: float
    # whole tokens left after this request
    remaining: int


@dataclass
class _Bucket:
    tokens: float
    updated: float
    rate: Rate

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(
                float(self.rate.burst), self.tokens + (now - self.updated) * self.rate.per_second
            )
        self.updated = max(self.updated, now)

    def full_at(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.updated) * self.rate.per_second >= self.rate.burst


class RateLimiter:
    """Buckets by key. `take` is synchronous: on one event loop concurrent requests cannot interleave inside it,
    so exactly `burst` of a simultaneous flood get through.

    `limited` counts refusals (for metrics); `on_limited(key)` is called on each one.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
        on_limited: Callable[[Hashable], None] | None = None,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._max_keys = max_keys
        self._on_limited = on_limited
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self.limited = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, rate: Rate) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(rate.burst), now, rate)
            self._buckets[key] = bucket
        else:
            bucket.refill(now)
            if bucket.rate != rate:
                # the configuration changed (a reload): what was used stays used, within the new capacity
                used = bucket.rate.burst - bucket.tokens
                bucket.rate = rate
                bucket.tokens = min(float(rate.burst), max(0.0, rate.burst - used))
            self._buckets.move_to_end(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            decision = Decision(True, 0.0, int(bucket.tokens))
        else:
            self.limited += 1
            if self._on_limited is not None:
                self._on_limited(key)
            decision = Decision(False, (1.0 - bucket.tokens) / rate.per_second, 0)
        self._evict(now)
        return decision

    def _evict(self, now: float) -> None:
        # the least recently used come first: drop those that have refilled (they equal a fresh bucket) ...
        while self._buckets:
            oldest_key, oldest = next(iter(self._buckets.items()))
            if not oldest.full_at(now):
                break
            del self._buckets[oldest_key]
        # ... and above the cap, the least recently used whatever their state (they start afresh)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
