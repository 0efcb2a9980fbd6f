"""The signing-key cache: max-age bounds, refetch on an unknown kid, single flight, algorithm hygiene."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.signing import StaticSource, ec_key, rsa_key

from broker._kits.jwks import JwksCache
from broker.domain.errors import unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(source: StaticSource, clock: Clock, **kw: Any) -> JwksCache:
    return JwksCache(lambda: source.fetch_jwks("/openid/v1/jwks"), clock=clock, **kw)


async def test_max_age_is_clamped() -> None:
    key = rsa_key()
    clock = Clock()
    source = StaticSource(key, max_age=5)  # below the floor: kept 60 s
    jwks = cache(source, clock, min_ttl=60, max_ttl=3600)
    assert await jwks.key(key.kid, "RS256") is not None
    clock.now += 59
    await jwks.key(key.kid, "RS256")
    assert source.fetches == 1
    clock.now += 2
    await jwks.key(key.kid, "RS256")
    assert source.fetches == 2

    source.max_age = 10**9  # above the ceiling: refetched after an hour
    clock.now += 61
    await jwks.key(key.kid, "RS256")
    fetches = source.fetches
    clock.now += 3599
    await jwks.key(key.kid, "RS256")
    assert source.fetches == fetches
    clock.now += 2
    await jwks.key(key.kid, "RS256")
    assert source.fetches == fetches + 1


async def test_unknown_kid_refetches_at_most_once_per_cooldown() -> None:
    old, new = rsa_key(), rsa_key()
    clock = Clock()
    source = StaticSource(old)
    jwks = cache(source, clock, refetch_cooldown=10)
    await jwks.key(old.kid, "RS256")
    source.jwks = StaticSource(old, new).jwks  # the cluster rotated in a new key
    assert await jwks.key(new.kid, "RS256") is None  # fetched just now: cooldown
    assert source.fetches == 1
    clock.now += 10
    assert await jwks.key(new.kid, "RS256") is not None
    assert source.fetches == 2
    assert await jwks.key("nope", "RS256") is None
    assert source.fetches == 2


async def test_concurrent_unknown_kids_share_one_fetch() -> None:
    key = rsa_key()
    clock = Clock()
    source = StaticSource(key)
    jwks = cache(source, clock, refetch_cooldown=10)
    await jwks.key(key.kid, "RS256")
    clock.now += 60
    results = await asyncio.gather(*(jwks.key("unknown", "RS256") for _ in range(50)))
    assert results == [None] * 50
    assert source.fetches == 2


async def test_first_load_is_single_flight() -> None:
    key = rsa_key()
    source = StaticSource(key)
    jwks = cache(source, Clock())
    found = await asyncio.gather(*(jwks.key(key.kid, "RS256") for _ in range(20)))
    assert all(k is not None for k in found)
    assert source.fetches == 1


async def test_algorithm_must_match_the_key() -> None:
    rsa, ec = rsa_key("RS256"), ec_key("ES256")
    jwks = cache(StaticSource(rsa, ec), Clock())
    assert await jwks.key(rsa.kid, "RS256") is not None
    assert await jwks.key(rsa.kid, "RS384") is None  # the JWK says RS256
    assert await jwks.key(rsa.kid, "HS256") is None
    assert await jwks.key(rsa.kid, "none") is None
    assert await jwks.key(ec.kid, "ES256") is not None
    assert await jwks.key(ec.kid, "RS256") is None


async def test_jwk_without_alg_serves_its_key_type_only() -> None:
    rsa, ec = rsa_key(), ec_key("ES384")
    jwks = cache(StaticSource(rsa, ec, with_alg=False), Clock())
    assert await jwks.key(rsa.kid, "RS512") is not None
    assert await jwks.key(rsa.kid, "ES256") is None
    assert await jwks.key(ec.kid, "ES384") is not None
    assert await jwks.key(ec.kid, "ES256") is None  # wrong curve


async def test_symmetric_keys_are_never_used() -> None:
    rsa = rsa_key()
    source = StaticSource(rsa)
    source.jwks["keys"].append({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"})
    jwks = cache(source, Clock())
    assert await jwks.key("hmac", "HS256") is None
    assert jwks.kids == (rsa.kid, "hmac")


async def test_stale_keys_survive_a_failed_refresh_for_a_while() -> None:
    key = rsa_key()
    clock = Clock()
    source = StaticSource(key, max_age=60)
    jwks = JwksCache(lambda: source.fetch_jwks("/"), clock=clock, max_stale=600)
    await jwks.key(key.kid, "RS256")
    source.fail = unavailable("down")
    clock.now += 61
    assert await jwks.key(key.kid, "RS256") is not None
    clock.now += 600
    with pytest.raises(Exception, match="down"):
        await jwks.key(key.kid, "RS256")


async def test_unusable_key_set_is_refused() -> None:
    source = StaticSource()
    with pytest.raises(Exception, match="unusable"):
        await cache(source, Clock()).key("x", "RS256")
