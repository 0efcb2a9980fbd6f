"""Every failure is application/problem+json: bad input, missing credentials, unknown routes, issuer errors."""

from __future__ import annotations

import json
import logging

import pytest
from http_harness import API_KEY, MAX_BODY, Broker
from support.served import assert_problem

from broker.domain.errors import BrokerError, ErrorKind, forbidden, unavailable, upstream_refused

CHALLENGE = 'Bearer realm="token-broker"'


async def post_raw(
    broker: Broker, data: bytes | str, content_type: str = "application/json"
) -> tuple[int, dict]:
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", data=data, headers={"Content-Type": content_type}
    )
    return response.status, assert_problem(response, raw, response.status)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "JSON object is required"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"deployer"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
async def test_malformed_body_is_400(broker: Broker, data: bytes, why: str) -> None:
    status, doc = await post_raw(broker, data)
    assert status == 400
    assert why in doc["detail"]
    assert broker.issuer.requests == []


async def test_deeply_nested_json_is_400_not_500(broker: Broker) -> None:
    status, _ = await post_raw(broker, "[" * 2000 + "]" * 2000)
    assert status == 400


async def test_form_encoded_body_is_415(broker: Broker) -> None:
    status, doc = await post_raw(broker, b"role=deployer", "application/x-www-form-urlencoded")
    assert status == 415
    assert doc["type"].endswith("unsupported-media-type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": 5}, "role"),
        ({"role": ["deployer"]}, "role"),
        ({"role": ""}, "role"),
        ({}, "role"),
        ({"role": "deployer", "namespace": 7}, "namespace"),
        ({"role": "deployer", "audiences": "vault"}, "audiences"),
        ({"role": "deployer", "audiences": []}, "audiences"),
        ({"role": "deployer", "audiences": ["vault", 3]}, "audiences[1]"),
        ({"role": "deployer", "context": ["a"]}, "context"),
        ({"role": "deployer", "context": {"job": 42}}, "context.job"),
        ({"role": "deployer", "unexpected": True}, "unexpected"),
        ({"role": "deployer", "serviceAccount": "admin"}, "serviceAccount"),
    ],
)
async def test_wrong_types_and_unknown_fields_are_422(broker: Broker, body: dict, field: str) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body=body)
    doc = assert_problem(response, raw, 422)
    assert field in [e["field"] for e in doc["errors"]], doc
    assert doc["detail"].startswith("invalid request body: ")
    assert broker.issuer.requests == []


@pytest.mark.parametrize(
    "namespace", ["Bad_NS", "UPPER", "-lead", "trail-", "a" * 64, "dots.not.allowed", "", "kube system"]
)
async def test_invalid_namespace_name_is_422(broker: Broker, namespace: str) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer", "namespace": namespace}
    )
    doc = assert_problem(response, raw, 422)
    assert [e["field"] for e in doc["errors"]] == ["namespace"]


@pytest.mark.parametrize("ttl", ["15 minutes", "1d", "", "-5m", "500ms", 0, -1, True, 1.5, 900.0, [900]])
async def test_bad_ttl_is_422(broker: Broker, ttl: object) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer", "ttl": ttl}
    )
    doc = assert_problem(response, raw, 422)
    assert [e["field"] for e in doc["errors"]] == ["ttl"]
    assert broker.issuer.requests == []


async def test_context_is_bounded(broker: Broker) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    for context in (too_many, {"k" * 65: "v"}, {"k": "v" * 257}, {"job": "line\ninjected"}):
        response, raw = await broker.call(
            "POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer", "context": context}
        )
        assert_problem(response, raw, 422)
    ok = {f"k{i}": "v" for i in range(15)} | {"k" * 64: "v" * 256}
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer", "context": ok}
    )
    assert response.status == 201, raw


async def test_validation_errors_do_not_echo_huge_input(broker: Broker) -> None:
    long_name = "x" * 3000
    response, raw = await broker.call(
        "POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer", long_name: 1}
    )
    doc = assert_problem(response, raw, 422)
    assert doc["errors"][0]["field"] == "x" * 39 + "…"
    body = raw.decode()
    assert long_name not in body
    assert len(body) < 1500


async def test_many_validation_errors_are_summarised(broker: Broker) -> None:
    body = {"role": 1} | {f"extra{i}": i for i in range(30)}
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body=body)
    doc = assert_problem(response, raw, 422)
    assert len(doc["errors"]) == 10
    assert "and 21 more" in doc["detail"]


async def test_huge_body_is_413_problem_json(broker: Broker) -> None:
    huge = json.dumps({"role": "deployer", "context": {"blob": "x" * (MAX_BODY * 4)}})
    status, doc = await post_raw(broker, huge)
    assert status == 413
    assert doc["type"].endswith("body-too-large")
    assert broker.issuer.requests == []


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/whoami", "/v1/roles"])
async def test_no_credential_is_401_with_www_authenticate(broker: Broker, path: str) -> None:
    method = "POST" if path == "/v1/tokens" else "GET"
    response, raw = await broker.call(
        method, path, json_body={"role": "deployer"} if method == "POST" else None
    )
    doc = assert_problem(response, raw, 401)
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert doc["type"].endswith("unauthenticated")


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": "tb_wrong"}, {"Authorization": "Bearer tb_wrong"}, {"Authorization": "Bearer a.b.c"}],
)
async def test_refused_credential_is_401_with_www_authenticate(
    broker: Broker, headers: dict[str, str]
) -> None:
    response, raw = await broker.call("POST", "/v1/tokens", headers=headers, json_body={"role": "deployer"})
    doc = assert_problem(response, raw, 401)
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert "tb_wrong" not in doc["detail"]


async def test_authentication_comes_before_body_validation(broker: Broker) -> None:
    response, raw = await broker.call(
        "POST", "/v1/tokens", data=b"{broken", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, raw, 401)


async def test_unknown_route_is_404_problem_json(broker: Broker) -> None:
    response, raw = await broker.call("GET", "/v1/nothing-here", headers={"X-API-Key": API_KEY})
    doc = assert_problem(response, raw, 404)
    assert doc["type"].endswith("not-found")


async def test_wrong_method_is_405_problem_json_with_allow(broker: Broker) -> None:
    response, raw = await broker.call("PUT", "/v1/whoami", cert="jenkins")
    assert_problem(response, raw, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (forbidden(ErrorKind.NO_GRANT, "not allowed"), 403),
        (upstream_refused("the API server refused the TokenRequest"), 502),
        (BrokerError(ErrorKind.RATE_LIMITED, "slow down", retry_after=2.5), 429),
    ],
)
async def test_issuer_errors_become_problem_json(broker: Broker, error: BrokerError, status: int) -> None:
    broker.issuer.fail_with = error
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer"})
    doc = assert_problem(response, raw, status)
    assert doc["title"] == error.title and doc["detail"] == error.detail
    if status == 429:
        assert response.headers["Retry-After"] == "3"


async def test_issuer_unavailable_is_503_with_retry_after(broker: Broker) -> None:
    broker.issuer.fail_with = unavailable("audit store unreachable", retry_after=7)
    response, raw = await broker.call("POST", "/v1/tokens", cert="jenkins", json_body={"role": "deployer"})
    doc = assert_problem(response, raw, 503)
    assert response.headers["Retry-After"] == "7"
    assert doc["detail"] == "audit store unreachable"
    assert doc["type"].endswith("unavailable")


async def test_unexpected_error_is_opaque_500_logged_with_request_id(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.issuer.fail_with = RuntimeError("database password is hunter2")
    caplog.set_level(logging.ERROR, logger="broker.http")
    response, raw = await broker.call(
        "POST",
        "/v1/tokens",
        cert="jenkins",
        json_body={"role": "deployer"},
        headers={"X-Request-ID": "req-500"},
    )
    doc = assert_problem(response, raw, 500)
    assert doc["request_id"] == "req-500"
    assert "hunter2" not in raw.decode() and "Traceback" not in raw.decode()
    failures = [r for r in caplog.records if r.exc_info and "req-500" in r.getMessage()]
    assert failures and isinstance(failures[0].exc_info[1], RuntimeError)


async def test_request_id_is_echoed_or_generated(broker: Broker) -> None:
    response, _ = await broker.call("GET", "/healthz", headers={"X-Request-ID": "build-42.step:7"})
    assert response.headers["X-Request-ID"] == "build-42.step:7"
    response, _ = await broker.call("GET", "/healthz")
    generated = response.headers["X-Request-ID"]
    assert len(generated) == 32
    response, raw = await broker.call("GET", "/missing", headers={"X-Request-ID": "bad id\twith spaces"})
    replaced = assert_problem(response, raw, 404)["request_id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32
