"""What the server answers on paths and methods outside the resources: the mux's plain-text 404, 405 Status,
health endpoints and discovery — the answers the broker's readiness probe and its error map see."""

from __future__ import annotations

import pytest
from conformance_support import Pair, assert_same, status_of

REQUESTS = [
    ("GET", "/nothing-here"),
    ("GET", "/apis/nope.example.com/v1/things"),
    ("GET", "/apis/nope.example.com"),
    ("GET", "/api/v2/x"),
    ("GET", "/api/v1/widgets"),
    ("GET", "/apis/coordination.k8s.io/v9/x"),
    ("GET", "/api/v1/namespaces/default/serviceaccounts/default/foo"),
    ("POST", "/version"),
    ("POST", "/version/"),
    ("POST", "/api"),
    ("POST", "/openid/v1/jwks"),
    ("POST", "/.well-known/openid-configuration"),
    ("DELETE", "/.well-known/openid-configuration"),
    ("GET", "/apis/authentication.k8s.io/v1/tokenreviews"),
    ("PUT", "/healthz"),
    ("DELETE", "/livez"),
    ("PUT", "/readyz"),
    ("GET", "/readyz"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS, ids=[f"{m} {p}" for m, p in REQUESTS])
async def test_paths_outside_the_resources(pair: Pair, method: str, path: str) -> None:
    sim, real = await pair.both(method, path)
    assert (sim.status, sim.headers.get("content-type")) == (real.status, real.headers.get("content-type"))
    if isinstance(real.body, dict):
        assert_same(status_of(sim), status_of(real))
    else:
        assert sim.body == real.body


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/openid/v1/jwks", "application/json"),
        ("/openid/v1/jwks", "application/*"),
        ("/.well-known/openid-configuration", "application/jwk-set+json"),
        ("/api/v1/namespaces", "text/html"),
    ],
)
async def test_an_unacceptable_accept_header_is_406(pair: Pair, path: str, accept: str) -> None:
    sim, real = await pair.both("GET", path, headers={"Accept": accept})
    assert_same(status_of(sim), status_of(real))
    assert real.status == 406


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/openid/v1/jwks", "application/jwk-set+json, application/json"),
        ("/openid/v1/jwks", "*/*"),
        ("/openid/v1/jwks", ""),
        ("/.well-known/openid-configuration", "application/json"),
    ],
)
async def test_discovery_documents_and_their_headers(pair: Pair, path: str, accept: str) -> None:
    sim, real = await pair.both("GET", path, headers={"Accept": accept})
    assert (sim.status, real.status) == (200, 200)
    assert sim.headers == real.headers
    assert sorted(sim.body) == sorted(real.body)
    if "issuer" in real.body:
        assert_same(sim.body, real.body, servers=(pair.sim.url, pair.real.url))
