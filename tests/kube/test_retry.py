"""Bounded retries: what is retried, how often, and when the server's Retry-After ends them."""

from __future__ import annotations

import pytest

from broker.kube.errors import KubeApiError, KubeTransportError
from broker.kube.retry import RetryPolicy, call_with_retries

FAST = RetryPolicy(attempts=4, max_elapsed=5.0, base_backoff=0.001, max_backoff=0.002, max_retry_after=0.01)


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_success_needs_no_retry() -> None:
    op = Flaky([])
    assert await call_with_retries(FAST, op) == "ok"
    assert op.calls == 1


async def test_transient_failures_are_retried_until_success() -> None:
    op = Flaky([KubeTransportError("connection", "reset"), KubeApiError(503, "ServiceUnavailable", "")])
    assert await call_with_retries(FAST, op) == "ok"
    assert op.calls == 3
    # a plain function returning a coroutine, as Cluster passes
    op = Flaky([KubeTransportError("connection", "reset"), KubeTransportError("timeout", "")])
    assert await call_with_retries(FAST, lambda: op()) == "ok"
    assert op.calls == 3


async def test_attempts_are_bounded() -> None:
    op = Flaky([KubeApiError(500, "InternalError", "") for _ in range(10)])
    with pytest.raises(KubeApiError):
        await call_with_retries(FAST, op)
    assert op.calls == FAST.attempts


async def test_permanent_failures_are_not_retried() -> None:
    op = Flaky([KubeApiError(403, "Forbidden", "no")])
    with pytest.raises(KubeApiError):
        await call_with_retries(FAST, op)
    assert op.calls == 1


async def test_retry_after_beyond_the_cap_stops_at_once() -> None:
    op = Flaky([KubeApiError(429, "TooManyRequests", "", retry_after=30.0)])
    with pytest.raises(KubeApiError) as info:
        await call_with_retries(FAST, op)
    assert op.calls == 1
    assert info.value.retry_after == 30.0


async def test_short_retry_after_is_honoured() -> None:
    op = Flaky([KubeApiError(429, "TooManyRequests", "", retry_after=0.005)])
    assert await call_with_retries(FAST, op) == "ok"
    assert op.calls == 2


def test_delay_after_respects_retry_after_and_budget() -> None:
    policy = RetryPolicy(attempts=5, max_elapsed=10.0, base_backoff=0.1, max_backoff=1.0, max_retry_after=2.0)
    throttled = KubeApiError(429, "TooManyRequests", "", retry_after=1.5)
    assert policy.delay_after(throttled, 1, 0.0) == 1.5
    assert policy.delay_after(throttled, 1, 9.0) is None  # would run past max_elapsed
    assert policy.delay_after(KubeApiError(429, "TooManyRequests", "", retry_after=3.0), 1, 0.0) is None
    assert policy.delay_after(throttled, 5, 0.0) is None  # attempts used up
    backoff = policy.delay_after(KubeTransportError("timeout", ""), 3, 0.0)
    assert backoff is not None and 0.2 <= backoff <= 0.4
    assert policy.delay_after(KubeTransportError("tls", ""), 1, 0.0) is None
