"""Fault injection, each kind observed from an ordinary HTTPS client."""

from __future__ import annotations

import aiohttp
import pytest
from kubesim_support import call, client

from kubesim import Faults, KubeSim

NS = "/api/v1/namespaces"


async def test_throttle_with_a_status(kubesim: KubeSim) -> None:
    kubesim.faults.throttle_status = 2
    kubesim.faults.retry_after = 3
    async with client(kubesim) as http:
        first = await call(http, "GET", NS)
        second = await call(http, "GET", NS)
        third = await call(http, "GET", NS)
    for code, body, resp in (first, second):
        assert code == 429
        assert resp.headers["Retry-After"] == "3"
        assert body["reason"] == "TooManyRequests"
        assert body["details"]["retryAfterSeconds"] == 3
        assert body["kind"] == "Status"
    assert third[0] == 200
    assert kubesim.faults.injected["throttle_status"] == 2


async def test_throttle_in_plain_text(kubesim: KubeSim) -> None:
    kubesim.faults.throttle_plain = 1
    async with client(kubesim) as http:
        code, body, resp = await call(http, "GET", NS)
        after, _, _ = await call(http, "GET", NS)
    assert code == 429
    assert resp.content_type == "text/plain"
    assert body == "Too many requests, please try again later.\n"
    assert resp.headers["Retry-After"] == "1"
    assert after == 200


async def test_errors_by_count_and_fraction(kubesim: KubeSim) -> None:
    kubesim.faults.error_count = 1
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", NS)
        assert code == 500
        assert body["reason"] == "InternalError"
        assert (await call(http, "GET", NS))[0] == 200

        kubesim.faults.error_fraction = 1.0
        kubesim.faults.error_code = 503
        code, body, _ = await call(http, "GET", NS)
        assert code == 503
        assert body["reason"] == "ServiceUnavailable"
        kubesim.faults.clear()
        assert (await call(http, "GET", NS))[0] == 200


async def test_seeded_fractions_are_reproducible(kubesim: KubeSim) -> None:
    async def pattern() -> list[int]:
        kubesim.faults.reseed(7)
        kubesim.faults.error_fraction = 0.5
        async with client(kubesim) as http:
            return [(await call(http, "GET", "/version"))[0] for _ in range(12)]

    first, second = await pattern(), await pattern()
    assert first == second
    assert set(first) == {200, 500}


async def test_reset_connections(kubesim: KubeSim) -> None:
    kubesim.faults.reset_count = 1
    async with client(kubesim) as http:
        # a POST: aiohttp would transparently retry an idempotent GET once on a fresh connection
        with pytest.raises(aiohttp.ClientError):
            await call(http, "POST", f"{NS}/default/serviceaccounts", json={"metadata": {"name": "r"}})
        assert (await call(http, "GET", NS))[0] == 200
    assert kubesim.faults.injected["reset"] == 1


async def test_outage_and_recovery(kubesim: KubeSim) -> None:
    kubesim.faults.outage = True
    async with client(kubesim) as http:
        for _ in range(3):
            with pytest.raises(aiohttp.ClientError):
                await call(http, "GET", "/version")
    kubesim.faults.outage = False
    async with client(kubesim) as http:
        assert (await call(http, "GET", "/version"))[0] == 200


async def test_path_prefix_limits_faults(kubesim: KubeSim) -> None:
    kubesim.faults.error_fraction = 1.0
    kubesim.faults.path_prefix = "/api/v1/namespaces/default/serviceaccounts"
    async with client(kubesim) as http:
        assert (await call(http, "GET", NS))[0] == 200
        assert (await call(http, "GET", "/api/v1/namespaces/default/serviceaccounts"))[0] == 500


async def test_latency(kubesim: KubeSim) -> None:
    kubesim.faults.latency = 0.05
    async with client(kubesim) as http:
        assert (await call(http, "GET", "/version"))[0] == 200
    assert kubesim.faults.injected["latency"] == 1


def test_faults_defaults_are_healthy() -> None:
    faults = Faults(seed=1)
    assert not faults.take_error()
    assert not faults.take_reset()
    assert faults.applies_to("/anything")
