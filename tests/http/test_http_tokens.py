"""POST /v1/tokens over real TLS: the three formats, each way of authenticating, the issue request passed on."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yaml
from http_harness import API_KEY, CLUSTER_CA_PEM, Broker
from support.served import assert_problem

from broker.domain.identity import Caller
from broker.http.models import ExecCredential, TokenResponse


async def test_json_token_for_a_client_certificate(broker: Broker) -> None:
    body = {
        "role": "deployer",
        "namespace": "apps",
        "ttl": "15m",
        "audiences": ["vault"],
        "context": {"job": "https://ci.example/job/42"},
    }
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body=body, headers={"User-Agent": "ci-runner/1.0"}
    )
    assert response.status == 201, raw
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    doc = json.loads(raw)
    TokenResponse.model_validate(doc)
    assert response.headers["Location"] == f"/v1/tokens/{doc['token_id']}"
    assert doc["token"] == broker.issuer.issued[-1]
    assert doc["service_account"] == {"namespace": "apps", "name": "tb-deployer"}
    assert doc["audiences"] == ["vault"]
    assert doc["role"] == "deployer" and doc["cluster"] == "staging"
    assert doc["warnings"] == []
    assert doc["expires_at"].endswith("Z") and doc["issued_at"].endswith("Z")
    issued = datetime.fromisoformat(doc["issued_at"])
    assert datetime.fromisoformat(doc["expires_at"]) - issued == timedelta(minutes=15)

    caller, request = broker.issuer.requests[-1]
    assert caller == Caller("jenkins", ("ci", "deployers"), "mtls")
    assert request.role == "deployer" and request.namespace == "apps"
    assert request.ttl_seconds == 900
    assert request.audiences == ("vault",)
    assert dict(request.context) == {"job": "https://ci.example/job/42"}
    assert request.source_address == "127.0.0.1"
    assert request.user_agent == "ci-runner/1.0"


async def test_defaults_pass_through_as_none(broker: Broker) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body={"role": "viewer"})
    assert response.status == 201, raw
    _, request = broker.issuer.requests[-1]
    assert (request.namespace, request.ttl_seconds, request.audiences, dict(request.context)) == (
        None,
        None,
        None,
        {},
    )


async def test_integer_ttl_and_warnings(broker: Broker) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body={"role": "viewer", "ttl": 1200}
    )
    assert response.status == 201, raw
    assert broker.issuer.requests[-1][1].ttl_seconds == 1200
    assert json.loads(raw)["warnings"] == ["requested expiration shortened"]


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}],
    ids=["x-api-key", "bearer"],
)
async def test_api_key_callers(broker: Broker, headers: dict[str, str]) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", headers=headers, json_body={"role": "viewer"})
    assert response.status == 201, raw
    assert broker.issuer.requests[-1][0] == Caller("build-bot", ("ci",), "api-key")


async def test_certificate_made_with_the_openssl_command_line(broker: Broker) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", cert="ossl", json_body={"role": "viewer"})
    assert response.status == 201, raw
    assert broker.issuer.requests[-1][0] == Caller("jenkins", ("ci",), "mtls")


async def test_certificate_without_common_name_is_401(broker: Broker) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", cert="nocn", json_body={"role": "viewer"})
    assert_problem(response, raw, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="token-broker"'
    assert broker.issuer.requests == []


async def test_certificate_from_an_untrusted_ca_fails_the_handshake(broker: Broker) -> None:
    with pytest.raises(aiohttp.ClientError):
        await broker.call("POST", "/v1/tokens", cert="stranger", json_body={"role": "viewer"})
    assert broker.issuer.requests == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/tokens?format=kubeconfig", {}),
        ("/v1/tokens", {"Accept": "application/yaml"}),
        ("/v1/tokens", {"Accept": "text/html;q=0.5, application/yaml;q=0.9"}),
    ],
)
async def test_kubeconfig_format(broker: Broker, path: str, headers: dict[str, str]) -> None:
    response, raw = await broker.call(
        "POST", path, cert="jenkins", headers=headers, json_body={"role": "deployer", "namespace": "ci"}
    )
    assert response.status == 201, raw
    assert response.content_type == "application/yaml"
    assert response.headers["Cache-Control"] == "no-store"
    doc = yaml.safe_load(raw)
    assert doc["kind"] == "Config"
    assert doc["current-context"] == "deployer@staging"
    assert doc["users"] == [{"name": "deployer", "user": {"token": broker.issuer.issued[-1]}}]
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == CLUSTER_CA_PEM
    assert doc["contexts"][0]["context"]["namespace"] == "ci"


async def test_exec_credential_format(broker: Broker) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens?format=exec-credential", cert="jenkins", json_body={"role": "viewer", "ttl": 600}
    )
    assert response.status == 201, raw
    assert response.content_type == "application/json"
    doc = json.loads(raw)
    ExecCredential.model_validate(doc)
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1" and doc["kind"] == "ExecCredential"
    assert doc["status"]["token"] == broker.issuer.issued[-1]
    expires = datetime.strptime(doc["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=601)


async def test_unknown_format_is_400_and_costs_no_token(broker: Broker) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens?format=pkcs12", cert="jenkins", json_body={"role": "viewer"}
    )
    doc = assert_problem(response, raw, 400)
    assert "exec-credential" in doc["detail"]
    assert broker.issuer.requests == []


async def test_legacy_token_without_expiry(broker: Broker) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body={"role": "legacy"})
    assert response.status == 201, raw
    assert json.loads(raw)["expires_at"] is None
    response, raw = await broker.call(
        "POST", "/v1/tokens?format=exec-credential", cert="jenkins", json_body={"role": "legacy"}
    )
    assert response.status == 201, raw
    assert json.loads(raw)["status"] == {"token": broker.issuer.issued[-1]}
