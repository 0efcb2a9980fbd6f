"""Token buckets: burst, refill, Retry-After, independence of keys, bounded memory."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker._kits.ratelimit import Rate, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_time_to_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=6, burst=3)  # one token every 10 s
    decisions = [limiter.take("a", rate) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after == pytest.approx(10.0)
    clock.now += 4
    refused = limiter.take("a", rate)
    assert not refused.allowed and refused.retry_after == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take("a", rate).allowed
    assert not limiter.take("a", rate).allowed
    assert limiter.limited == 3


def test_keys_are_independent() -> None:
    limiter = RateLimiter(clock=Clock())
    rate = Rate(per_minute=1, burst=1)
    assert limiter.take(("oidc", "a"), rate).allowed
    assert not limiter.take(("oidc", "a"), rate).allowed
    assert limiter.take(("mtls", "a"), rate).allowed
    assert limiter.take(("oidc", "b"), rate).allowed


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=60, burst=2)
    limiter.take("a", rate)
    clock.now += 3600
    assert [limiter.take("a", rate).allowed for _ in range(3)] == [True, True, False]


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=60, burst=5)  # refills in 5 s
    for user in "abc":
        limiter.take(user, rate)
    assert len(limiter) == 3
    clock.now += 1.5  # 'a' (used once) is full again after 1 s: all three are
    limiter.take("d", rate)
    assert len(limiter) == 1


def test_memory_is_capped_under_a_flood_of_callers() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_keys=100)
    rate = Rate(per_minute=1, burst=1)
    for i in range(10_000):
        limiter.take(i, rate)
    assert len(limiter) == 100


def test_a_new_rate_applies_to_an_existing_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(10):
        limiter.take("a", Rate(per_minute=60, burst=10))
    # a reload lowered the burst: what was used stays used
    assert not limiter.take("a", Rate(per_minute=60, burst=2)).allowed
    clock.now += 1
    assert limiter.take("a", Rate(per_minute=60, burst=2)).allowed


def test_refusals_reach_the_hook() -> None:
    seen: list[object] = []
    limiter = RateLimiter(clock=Clock(), on_limited=seen.append)
    rate = Rate(per_minute=1, burst=1)
    limiter.take("a", rate)
    limiter.take("a", rate)
    limiter.take("b", rate)
    assert seen == ["a"]


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (1, 0)])
def test_invalid_rates(per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Rate(per_minute, burst)


@given(
    per_minute=st.floats(min_value=0.5, max_value=600),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_the_refill(per_minute: float, burst: int, gaps: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute, burst)
    start = clock.now
    allowed = 0
    for gap in gaps:
        clock.now += gap
        decision = limiter.take("k", rate)
        allowed += decision.allowed
        if not decision.allowed:
            assert decision.retry_after > 0
    assert allowed <= burst + (clock.now - start) * per_minute / 60 + 1e-9
