"""Per-caller rate limits on POST /v1/tokens over real HTTP and the real issuance use case: a flood from one
caller is cut at its burst while another caller is untouched, 429 problems carry Retry-After, and a refused
request costs the API server and the audit trail nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from support.memory_kube import MemoryKube
from support.stores import sqlite_store

from broker.app.wiring import policy_from
from broker.audit import AuditFilter, SqlAuditStore
from broker.callers import ApiKeyAuthenticator, AuthenticatorChain
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.http import build_http_app
from broker.policy import Policy
from broker.settings import BrokerConfig
from broker.usecases.issuance import Issuer
from broker.usecases.ratelimits import CallerRateLimits

LIMITED_KEY = "tb_limited_3JrW8xQp2LmZ7vKd"
FREE_KEY = "tb_free_Yt6Hn1Cs9BqE4uXa"
BURST = 5


def make_policy(default: dict[str, Any] | None = None) -> Policy:
    cfg = BrokerConfig.model_validate(
        {
            "server": {"tls_cert": "c", "tls_key": "k", "client_ca": "ca"},
            "clusters": [{"name": "staging", "in_cluster": True}],
            "roles": [
                {
                    "name": "deployer",
                    "service_account": "deployer",
                    "namespaces": ["ci", "apps"],
                    "revocable": True,
                },
                {"name": "viewer", "service_account": "viewer", "namespaces": ["ci"]},
            ],
            "grants": [
                {
                    "name": "limited-deploys",
                    "users": ["limited-bot"],
                    "roles": ["deployer"],
                    # one token a minute: nothing refills within a test
                    "rate_limit": {"per_minute": 1, "burst": BURST},
                },
                {"name": "limited-views", "users": ["limited-bot"], "roles": ["viewer"]},
                {"name": "free", "users": ["free-bot"], "roles": ["deployer"]},
            ],
            "auth": {"rate_limit": default or {"per_minute": 6000, "burst": 1000}},
        }
    )
    return policy_from(cfg)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Edge:
    """The HTTP edge over the real issuance use case, its cluster in memory and its audit store on SQLite."""

    url: str
    kube: MemoryKube
    store: SqlAuditStore
    limits: CallerRateLimits
    clock: Clock
    session: aiohttp.ClientSession

    async def token(
        self, key: str, role: str = "deployer", namespace: str = "ci"
    ) -> tuple[int, dict[str, str], Any]:
        async with self.session.post(
            self.url + "/v1/tokens",
            json={"role": role, "namespace": namespace},
            headers={"Authorization": f"Bearer {key}"},
        ) as resp:
            return resp.status, dict(resp.headers), json.loads(await resp.read())

    def token_requests(self) -> int:
        """TokenRequests the API server saw."""
        return sum(1 for call in self.kube.journal if call.startswith("POST") and call.endswith("/token"))


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    clock = Clock()
    policy = make_policy()
    kube = MemoryKube(namespaces={"ci": {}, "apps": {}})
    limited: list[tuple[str, str, str]] = []
    limits = CallerRateLimits(clock=clock, on_limited=lambda *key: limited.append(key))
    chain = AuthenticatorChain(
        [
            ApiKeyAuthenticator(
                [
                    ("limited-bot", hashlib.sha256(LIMITED_KEY.encode()).hexdigest(), ()),
                    ("free-bot", hashlib.sha256(FREE_KEY.encode()).hexdigest(), ()),
                ]
            )
        ]
    )
    async with sqlite_store(tmp_path) as store:
        issuer = Issuer(lambda: policy, {"staging": kube.handle("staging")}, store, rate_limits=limits)
        app = build_http_app(authenticator=chain, issuance=issuer, max_body_bytes=4096)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        connector = aiohttp.TCPConnector(limit=300)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30), trust_env=False
        ) as session:
            yield Edge(f"http://127.0.0.1:{runner.addresses[0][1]}", kube, store, limits, clock, session)
        await runner.cleanup()


async def test_a_flood_from_one_caller_does_not_touch_another(edge: Edge) -> None:
    flood = [edge.token(LIMITED_KEY) for _ in range(200)]
    others = [edge.token(FREE_KEY) for _ in range(50)]
    results = await asyncio.gather(*flood, *others)
    limited, free = results[:200], results[200:]

    assert sorted(status for status, _, _ in limited) == [201] * BURST + [429] * (200 - BURST)
    assert [status for status, _, _ in free] == [201] * 50
    # refused requests never reached the API server nor the audit trail
    assert edge.token_requests() == BURST + 50
    issued = (await edge.store.query_issuances(AuditFilter(caller="limited-bot"), limit=1000)).items
    assert len(issued) == BURST and all(r.event == "issued" for r in issued)
    assert (await edge.store.query_events(AuditFilter(event="denied"))).items == ()
    assert edge.limits.limited == 200 - BURST


async def test_a_429_is_a_problem_with_retry_after(edge: Edge) -> None:
    for _ in range(BURST):
        status, _, _ = await edge.token(LIMITED_KEY)
        assert status == 201
    status, headers, body = await edge.token(LIMITED_KEY)
    assert status == 429
    assert headers["Content-Type"].startswith("application/problem+json")
    # per_minute = 1: the next token is a minute away
    assert headers["Retry-After"] == "60"
    assert body["type"].endswith(":rate-limited") and body["status"] == 429
    # the caller is not told which grant limited it
    assert "limited-deploys" not in json.dumps(body)

    edge.clock.now += 59.5
    status, headers, _ = await edge.token(LIMITED_KEY)
    assert status == 429 and headers["Retry-After"] == "1"  # rounded up, never 0
    edge.clock.now += 0.5
    status, _, _ = await edge.token(LIMITED_KEY)
    assert status == 201


async def test_each_grant_with_its_own_limit_has_its_own_bucket(edge: Edge) -> None:
    for _ in range(BURST):
        await edge.token(LIMITED_KEY)
    assert (await edge.token(LIMITED_KEY))[0] == 429
    # the same caller under a grant without its own limit draws from the (generous) default bucket
    status, _, _ = await edge.token(LIMITED_KEY, role="viewer")
    assert status == 201


async def test_unauthenticated_and_invalid_requests_cost_nothing(edge: Edge) -> None:
    for _ in range(3):
        status, _, _ = await edge.token("tb_nobody_knows_this_key")
        assert status == 401
        async with edge.session.post(
            edge.url + "/v1/tokens", json={"role": 7}, headers={"Authorization": f"Bearer {LIMITED_KEY}"}
        ) as resp:
            assert resp.status == 422
    assert edge.limits.limited == 0
    statuses = [(await edge.token(LIMITED_KEY))[0] for _ in range(BURST)]
    assert statuses == [201] * BURST


async def test_other_endpoints_are_not_limited(edge: Edge) -> None:
    for _ in range(BURST + 1):
        await edge.token(LIMITED_KEY)
    async with edge.session.get(
        edge.url + "/v1/whoami", headers={"Authorization": f"Bearer {LIMITED_KEY}"}
    ) as resp:
        assert resp.status == 200


def test_buckets_are_per_authentication_method_and_user() -> None:
    policy = make_policy(default={"per_minute": 1, "burst": 1})
    seen: list[tuple[str, str, str]] = []
    limits = CallerRateLimits(clock=Clock(), on_limited=lambda *k: seen.append(k))

    def take(caller: Caller) -> None:
        limits.take(caller, policy.match(caller, "deployer", "ci").rate_limit)

    take(Caller("free-bot", (), "api-key"))
    # the same name through another method is another caller
    take(Caller("free-bot", (), "mtls"))
    with pytest.raises(BrokerError) as err:
        take(Caller("free-bot", (), "api-key"))
    assert err.value.status == 429
    assert "default limit" in err.value.reason
    assert seen == [("api-key", "free-bot", "")]


def test_a_reloaded_policy_applies_at_once() -> None:
    policies = [make_policy(default={"per_minute": 1, "burst": 1})]
    limits = CallerRateLimits(clock=Clock())
    caller = Caller("free-bot", (), "api-key")

    def take() -> None:
        # each request draws on the bucket its own policy match names: the policy of that moment
        limits.take(caller, policies[-1].match(caller, "deployer", "ci").rate_limit)

    take()
    policies.append(make_policy(default={"per_minute": 1, "burst": 3}))
    # one of the three was used before the reload: two are left
    take()
    take()
    with pytest.raises(BrokerError):
        take()
