"""The broker's /metrics as Prometheus scrapes it: over HTTP from its own listener, valid for `promtool check
metrics`, free of caller-supplied strings, and moving by exactly what happened through the real HTTP API.

The default registry is process-wide (other tests in this process record into it too), so the counters are
compared as deltas between two scrapes, never as absolute values."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from e2e_support import mtls_context, post_token, stack_at
from prometheus_client.parser import text_string_to_metric_families

from broker.cli.demo_stack import DEMO_NAMESPACE, DemoStack

UNBOUNDED = "zzz-unbounded-123"
TIMEOUT = aiohttp.ClientTimeout(total=30)
# the janitor counts active tokens after each of its sweeps: sweep often, so the gauge follows quickly
FAST_JANITOR = "interval_seconds = 0.2"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[DemoStack]:
    async with stack_at(tmp_path / "demo", janitor_config=FAST_JANITOR) as running:
        yield running


@pytest.fixture
def caller(stack: DemoStack) -> ssl.SSLContext:
    return mtls_context(stack, *stack.paths.caller_cert("jenkins"))


async def scrape(stack: DemoStack) -> str:
    assert stack.broker is not None and stack.broker.listeners is not None
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False) as session,
        session.get(stack.broker.listeners.metrics_url + "/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (sample_name, _), v in samples.items() if sample_name == name)


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        message = "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


async def request(
    stack: DemoStack, ctx: ssl.SSLContext, method: str, path: str, body: object = None
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False) as session,
        session.request(method, stack.broker_url + path, json=body, ssl=ctx) as resp,
    ):
        return resp.status, await resp.text()


async def issue(stack: DemoStack, ctx: ssl.SSLContext, **body: str) -> dict[str, str]:
    status, _, text = await post_token(stack, ctx, {"role": "deployer", "namespace": DEMO_NAMESPACE, **body})
    assert status == 201, text
    answer: dict[str, str] = json.loads(text)
    return answer


async def test_scraped_exposition_passes_promtool_and_holds_no_caller_strings(
    stack: DemoStack, caller: ssl.SSLContext
) -> None:
    tool = promtool()
    await issue(stack, caller)
    # caller-chosen strings in every place a request can carry one: role, namespace, path, token id
    status, _, _ = await post_token(stack, caller, {"role": UNBOUNDED, "namespace": DEMO_NAMESPACE})
    assert status == 403
    status, _, _ = await post_token(stack, caller, {"role": "deployer", "namespace": f"{UNBOUNDED}-ns"})
    assert status == 403
    status, _ = await request(stack, caller, "GET", f"/v1/{UNBOUNDED}/path?{UNBOUNDED}=1")
    assert status == 404
    status, _ = await request(stack, caller, "DELETE", f"/v1/tokens/{UNBOUNDED}")
    assert status == 404
    status, _ = await request(stack, caller, f"{UNBOUNDED.upper()[:8]}", "/v1/tokens")
    assert status >= 400
    # no client certificate at all: an authentication failure
    status, _ = await request(
        stack, ssl.create_default_context(cafile=str(stack.paths.server_ca)), "GET", "/v1/roles"
    )
    assert status == 401

    text = await scrape(stack)
    checked = await asyncio.to_thread(
        subprocess.run, [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )
    assert UNBOUNDED not in text.lower()
    samples = parse(text)
    assert (
        value(
            samples, "token_broker_http_requests_total", route="unmatched", method="GET", status_class="4xx"
        )
        >= 1
    )
    assert (
        value(
            samples,
            "token_broker_http_requests_total",
            route="/v1/tokens/{token_id}",
            method="DELETE",
            status_class="4xx",
        )
        >= 1
    )
    assert value(samples, "token_broker_tokens_denied_total", reason_kind="unknown_role") >= 1
    assert value(samples, "token_broker_tokens_denied_total", reason_kind="namespace") >= 1
    assert value(samples, "token_broker_auth_failures_total", method="none", reason="missing") >= 1
    assert (
        value(
            samples,
            "token_broker_kube_requests_total",
            verb="create",
            resource="serviceaccounts/token",
            code="201",
        )
        >= 1
    )
    assert value(samples, "token_broker_jwks_refresh_total", source="cluster", outcome="success") >= 1


async def test_counters_move_by_exactly_what_was_issued_denied_and_revoked(
    stack: DemoStack, caller: ssl.SSLContext
) -> None:
    issued_n, denied_n, revoked_n = 4, 3, 2
    # one issuance first: the service account creation, issuer discovery and JWKS fetch are behind us
    await issue(stack, caller)
    before = parse(await scrape(stack))

    tokens = [await issue(stack, caller) for _ in range(issued_n)]
    denials = [
        {"role": UNBOUNDED, "namespace": DEMO_NAMESPACE},  # unknown_role
        {"role": "legacy-robot", "namespace": DEMO_NAMESPACE},  # a role no grant gives this caller
        {"role": "deployer", "namespace": DEMO_NAMESPACE, "ttl": "10h"},  # above the role's max_ttl
    ]
    assert len(denials) == denied_n
    for body in denials:
        status, _, text = await post_token(stack, caller, body)
        assert status in (400, 403, 422), text
    for token in tokens[:revoked_n]:
        status, text = await request(stack, caller, "DELETE", f"/v1/tokens/{token['token_id']}")
        assert status == 204, text
    # revoking again is idempotent (204) and revokes nothing more
    status, _ = await request(stack, caller, "DELETE", f"/v1/tokens/{tokens[0]['token_id']}")
    assert status == 204

    after = parse(await scrape(stack))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def delta_total(name: str) -> float:
        return total(after, name) - total(before, name)

    issued = {"role": "deployer", "token_namespace": DEMO_NAMESPACE, "mode": "token-request"}
    assert delta("token_broker_tokens_issued_total", **issued) == issued_n
    assert delta_total("token_broker_tokens_issued_total") == issued_n
    assert delta_total("token_broker_tokens_denied_total") == denied_n
    assert delta("token_broker_tokens_denied_total", reason_kind="unknown_role") == 1
    assert delta("token_broker_tokens_denied_total", reason_kind="ttl") == 1
    assert delta_total("token_broker_tokens_failed_total") == 0
    assert delta("token_broker_tokens_revoked_total", role="deployer") == revoked_n
    assert delta_total("token_broker_tokens_revoked_total") == revoked_n
    count = "token_broker_issuance_duration_seconds_count"
    assert delta(count, outcome="issued") == issued_n
    assert delta(count, outcome="denied") == denied_n
    assert delta(count, outcome="failed") == 0

    def kube(verb: str, resource: str, code: str) -> float:
        return delta("token_broker_kube_requests_total", verb=verb, resource=resource, code=code)

    assert kube("create", "serviceaccounts/token", "201") == issued_n
    assert delta(
        "token_broker_kube_request_duration_seconds_count", verb="create", resource="serviceaccounts/token"
    ) == (issued_n)
    # deployer is revocable: each token is bound to a Secret, and revoking deletes it
    assert kube("create", "secrets", "201") == issued_n
    assert kube("delete", "secrets", "200") == revoked_n
    # the service account was created by the first issuance and is cached since
    assert kube("create", "serviceaccounts", "201") == 0

    http = "token_broker_http_requests_total"
    assert delta(http, route="/v1/tokens", method="POST", status_class="2xx") == issued_n
    assert delta(http, route="/v1/tokens", method="POST", status_class="4xx") == denied_n
    assert delta(http, route="/v1/tokens/{token_id}", method="DELETE", status_class="2xx") == revoked_n + 1


async def test_active_tokens_gauge_follows_issuance_and_revocation(
    stack: DemoStack, caller: ssl.SSLContext
) -> None:
    tokens = [await issue(stack, caller) for _ in range(3)]
    tokens.append(await issue(stack, caller, role="reader"))
    status, _ = await request(stack, caller, "DELETE", f"/v1/tokens/{tokens[0]['token_id']}")
    assert status == 204

    async def gauge() -> tuple[float, float, float]:
        samples = parse(await scrape(stack))
        return (
            value(samples, "token_broker_active_tokens", role="deployer"),
            value(samples, "token_broker_active_tokens", role="reader"),
            value(samples, "token_broker_janitor_leader"),
        )

    # the broker's janitor takes the Lease on the simulator, then counts on each sweep
    async with asyncio.timeout(20):
        while (seen := await gauge()) != (2, 1, 1):
            await asyncio.sleep(0.1)
    assert seen == (2, 1, 1)
