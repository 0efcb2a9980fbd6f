"""Per-caller rate limits on token requests: the grants that would allow a request (policy's Match) decide the
bucket it draws from; a refused request costs the API server and the audit store nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from broker._kits.ratelimit import Decision, Rate, RateLimiter
from broker.domain.errors import BrokerError, ErrorKind
from broker.domain.identity import Caller
from broker.policy import RateLimitChoice


def rate_limited(decision: Decision, caller: Caller, scope: str) -> BrokerError:
    bucket = f"grant {scope}" if scope else "the default limit"
    return BrokerError(
        ErrorKind.RATE_LIMITED,
        "too many token requests from this caller; retry after the time in Retry-After",
        reason=f"rate limit of {bucket} reached by {caller.method} caller {caller.user!r}",
        retry_after=decision.retry_after,
    )


class CallerRateLimits:
    """Token buckets keyed by (method, user, scope), where scope is the grant with its own `rate_limit` that
    applies to the request ("" for the default). The limit comes with each request's policy match, so a
    reload's new limits apply at once.

    `limited` counts refused requests; `on_limited(method, user, scope)` is the hook for metrics.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
        on_limited: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._on_limited = on_limited
        self.limiter = RateLimiter(clock=clock, max_keys=max_callers, on_limited=self._limited)

    @property
    def limited(self) -> int:
        return self.limiter.limited

    def _limited(self, key: Hashable) -> None:
        if self._on_limited is not None and isinstance(key, tuple) and len(key) == 3:
            method, user, scope = key
            self._on_limited(str(method), str(user), str(scope))

    def take(self, caller: Caller, choice: RateLimitChoice) -> None:
        """Take one request from the caller's bucket, or raise BrokerError 429 with Retry-After."""
        rate = Rate(choice.limit.per_minute, choice.limit.burst)
        decision = self.limiter.take((caller.method, caller.user, choice.scope), rate)
        if not decision.allowed:
            raise rate_limited(decision, caller, choice.scope)
