"""Reading API server failures and what the broker's caller is told."""

from __future__ import annotations

import email.utils
import json

import pytest

from broker.kube.api import to_broker_error
from broker.kube.errors import (
    DEFAULT_RETRY_AFTER,
    KubeApiError,
    KubeTransportError,
    missing_permission,
    parse_failure,
    parse_retry_after,
)

FORBIDDEN_MSG = (
    'serviceaccounts "deployer" is forbidden: User "broker" cannot create resource "serviceaccounts/token" '
    'in API group "" in the namespace "ci"'
)


def status(code: int, reason: str, message: str, details: dict[str, object] | None = None) -> bytes:
    body: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return json.dumps(body).encode()


def test_status_body_is_read() -> None:
    body = status(
        404, "NotFound", 'serviceaccounts "sa1" not found', {"name": "sa1", "kind": "serviceaccounts"}
    )
    err = parse_failure(404, {}, body, method="GET", path="/api/v1/namespaces/ns/serviceaccounts/sa1")
    assert (err.status, err.reason, err.message) == (404, "NotFound", 'serviceaccounts "sa1" not found')
    assert err.details_kind == "serviceaccounts"
    assert not err.transient
    assert err.retry_after is None


def test_status_429_retry_after_from_details() -> None:
    body = status(
        429, "TooManyRequests", "Too many requests, please try again later.", {"retryAfterSeconds": 7}
    )
    err = parse_failure(429, {}, body)
    assert err.transient and err.retry_after == 7.0


def test_header_retry_after_wins_over_details() -> None:
    body = status(429, "TooManyRequests", "slow down", {"retryAfterSeconds": 7})
    assert parse_failure(429, {"Retry-After": "3"}, body).retry_after == 3.0


def test_plain_text_429_from_priority_and_fairness() -> None:
    err = parse_failure(429, {"Retry-After": "1"}, b"Too many requests, please try again later.\n")
    assert err.status == 429
    assert err.reason == "TooManyRequests"
    assert err.message == "Too many requests, please try again later."
    assert err.retry_after == 1.0
    assert err.transient


def test_non_status_json_and_html_bodies() -> None:
    err = parse_failure(502, {}, b'{"error": "upstream"}')
    assert err.reason == "BadGateway" and err.transient
    html = parse_failure(503, {}, b"<html><body>" + b"x" * 2000 + b"</body></html>")
    assert html.transient and len(html.message) <= 400
    empty = parse_failure(500, {}, b"")
    assert empty.message == "InternalError"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 0 ", 0.0), ("", None), (None, None), ("soon", None), ("-3", None), ("1.5", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_missing_permission_in_a_namespace() -> None:
    assert missing_permission(FORBIDDEN_MSG) == (
        'create resource "serviceaccounts/token" in API group "" in the namespace "ci"'
    )


def test_missing_permission_cluster_scope_and_none() -> None:
    msg = 'namespaces "ci" is forbidden: User "b" cannot get resource "namespaces" in API group "" at the cluster scope'
    assert missing_permission(msg) == 'get resource "namespaces" in API group "" at the cluster scope'
    assert missing_permission("forbidden") is None


def test_403_names_the_missing_permission() -> None:
    err = to_broker_error(
        parse_failure(403, {}, status(403, "Forbidden", FORBIDDEN_MSG)), action="request a token"
    )
    assert err.status == 502
    assert 'create resource "serviceaccounts/token" in API group "" in the namespace "ci"' in err.detail
    assert err.retry_after is None


def test_401_is_the_brokers_own_credentials() -> None:
    err = to_broker_error(parse_failure(401, {}, status(401, "Unauthorized", "Unauthorized")), action="x")
    assert err.status == 502
    assert "broker's own credentials" in err.detail


def test_throttling_and_5xx_become_503_with_retry_after() -> None:
    throttled = to_broker_error(parse_failure(429, {"Retry-After": "9"}, b"Too many requests"), action="x")
    assert (throttled.status, throttled.retry_after) == (503, 9.0)
    broken = to_broker_error(parse_failure(500, {}, status(500, "InternalError", "boom")), action="x")
    assert (broken.status, broken.retry_after) == (503, DEFAULT_RETRY_AFTER)


def test_transport_errors() -> None:
    timeout = to_broker_error(KubeTransportError("timeout", "no answer"), action="x", cluster="prod")
    assert timeout.status == 503 and timeout.retry_after == DEFAULT_RETRY_AFTER and "prod" in timeout.detail
    refused = to_broker_error(KubeTransportError("connection", "refused"), action="x")
    assert refused.status == 503
    tls = to_broker_error(KubeTransportError("tls", "certificate verify failed"), action="x")
    assert tls.status == 502 and tls.retry_after is None
    assert not KubeTransportError("tls", "").transient
    assert KubeTransportError("connection", "").transient


def test_other_statuses_are_502_with_the_servers_message() -> None:
    err = to_broker_error(KubeApiError(400, "BadRequest", "bad kind"), action="do it")
    assert err.status == 502 and "bad kind" in err.detail
    assert not KubeApiError(501, "NotImplemented", "").transient
