"""Nothing secret reaches the logs: no API key, no bearer value, no issued token, no query string."""

from __future__ import annotations

import logging

import pytest
from http_harness import API_KEY, Broker, jwt_like, wait_for


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    handler_text = caplog.text  # formatted, tracebacks included
    messages = "\n".join(r.getMessage() for r in caplog.records)
    extras = "\n".join(repr(vars(r)) for r in caplog.records)
    return "\n".join((handler_text, messages, extras))


async def test_no_credentials_or_tokens_in_logs(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "tb_wrong_Q9x8c7v6b5n4m3"
    presented_jwt = jwt_like()
    query_secret = "qs_secret_L0ngUn1que"
    calls = [
        dict(method="POST", path="/v1/tokens", headers={"Authorization": f"Bearer {API_KEY}"}),
        dict(method="POST", path="/v1/tokens?format=kubeconfig", headers={"X-API-Key": API_KEY}),
        dict(method="POST", path=f"/v1/tokens?format=json&access_token={query_secret}", cert="jenkins"),
        dict(method="POST", path="/v1/tokens?format=exec-credential", cert="jenkins"),
        dict(method="POST", path="/v1/tokens", headers={"X-API-Key": wrong_key}),
        dict(method="POST", path="/v1/tokens", headers={"Authorization": f"Bearer {wrong_key}"}),
        dict(method="POST", path="/v1/tokens", headers={"Authorization": f"Bearer {presented_jwt}"}),
        dict(method="GET", path="/v1/whoami", headers={"Authorization": f"Bearer {API_KEY}"}),
    ]
    for call in calls:
        response, _ = await broker.call(
            json_body={"role": "deployer"} if call["method"] == "POST" else None, **call
        )
        assert response.status in (200, 201, 401)
    broker.issuer.fail_with = RuntimeError("issuer exploded")
    response, _ = await broker.call(
        "POST", "/v1/tokens", headers={"X-API-Key": API_KEY}, json_body={"role": "deployer"}
    )
    assert response.status == 500

    def access_records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "aiohttp.access"]

    await wait_for(lambda: len(access_records()) >= len(calls) + 1)

    issued = broker.issuer.issued
    assert len(issued) == 4
    logged = everything_logged(caplog)
    for secret in (API_KEY, wrong_key, presented_jwt, query_secret, *issued):
        assert secret not in logged
    assert "access_token" not in logged
    assert "issuer exploded" in logged  # the 500 was logged, with its traceback

    lines = [r.getMessage() for r in access_records()]
    assert any('"POST /v1/tokens" 201' in line and "caller=build-bot (api-key)" in line for line in lines)
    assert any("caller=jenkins (mtls)" in line for line in lines)
    assert all("request_id=" in line and "request_id=-" not in line for line in lines)
