"""whoami, roles, health and readiness probes, the OpenAPI document over HTTP."""

from __future__ import annotations

import asyncio
import json

from http_harness import API_KEY, ROLES, Broker
from support.served import assert_problem

from broker.domain.errors import unavailable
from broker.http.models import RoleList, WhoAmI


async def test_whoami_for_a_certificate(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/v1/whoami", cert="jenkins")
    assert response.status == 200, raw
    doc = json.loads(raw)
    WhoAmI.model_validate(doc)
    assert doc == {
        "user": "jenkins",
        "groups": ["ci", "deployers"],
        "method": "mtls",
        "roles": ["deployer", "viewer", "legacy"],
    }


async def test_whoami_for_an_api_key(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/v1/whoami", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 200, raw
    assert json.loads(raw) == {
        "user": "build-bot",
        "groups": ["ci"],
        "method": "api-key",
        "roles": ["deployer", "viewer", "legacy"],
    }


async def test_roles_lists_only_usable_roles(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/v1/roles", cert="alice")
    assert response.status == 200, raw
    doc = RoleList.model_validate_json(raw)
    assert [r.name for r in doc.roles] == ["viewer"]
    viewer = json.loads(raw)["roles"][0]
    expected = ROLES["viewer"]
    assert viewer == {
        "name": "viewer",
        "description": expected.description,
        "cluster": "staging",
        "namespaces": ["ci"],
        "default_ttl": 600,
        "max_ttl": 600,
        "mode": "token-request",
        "revocable": False,
        "cluster_server": expected.cluster_server,
        "cluster_ca_data": None,
    }


async def test_healthz_needs_no_credential(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/healthz")
    assert response.status == 200
    assert json.loads(raw) == {"status": "ok"}


async def test_readyz_ready(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/readyz")
    assert response.status == 200
    assert json.loads(raw) == {"status": "ok"}


async def test_readyz_names_what_is_failing(broker: Broker) -> None:
    broker.issuer.failing = ["kube:staging", "audit-store"]
    response, raw = await broker.call("GET", "/readyz")
    doc = assert_problem(response, raw, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert doc["failing"] == ["kube:staging", "audit-store"]
    assert "kube:staging" in doc["detail"] and "audit-store" in doc["detail"]


async def test_readyz_when_the_check_itself_fails(broker: Broker) -> None:
    broker.issuer.ready_error = unavailable("boom")
    response, raw = await broker.call("GET", "/readyz")
    assert_problem(response, raw, 503)
    broker.issuer.ready_error = OSError("connection refused")
    response, raw = await broker.call("GET", "/readyz")
    assert_problem(response, raw, 503)


async def test_openapi_document_is_served_without_credentials(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    doc = json.loads(raw)
    assert doc["openapi"] == "3.1.0"
    assert "/v1/tokens" in doc["paths"]


async def test_authenticators_can_be_swapped_while_serving(broker: Broker) -> None:
    response, _ = await broker.call("GET", "/v1/whoami", headers={"X-API-Key": API_KEY})
    assert response.status == 200
    broker.chain.replace([broker.chain.authenticators[0]])  # a reload that drops the API keys
    response, raw = await broker.call("GET", "/v1/whoami", headers={"X-API-Key": API_KEY})
    assert_problem(response, raw, 401)
    response, _ = await broker.call("GET", "/v1/whoami", cert="jenkins")
    assert response.status == 200


async def test_concurrent_requests(broker: Broker) -> None:
    results = await asyncio.gather(
        *(broker.call("POST", "/v1/tokens", cert="jenkins", json_body={"role": "viewer"}) for _ in range(20))
    )
    assert [r.status for r, _ in results] == [201] * 20
    assert len({json.loads(raw)["token"] for _, raw in results}) == 20
