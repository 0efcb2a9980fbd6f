"""The audit trail's use cases below the HTTP edge: filter semantics for records found by jti, signature checks of
verify_any against the simulator's keys, export bounds, and an export the store fails in the middle of."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from click.testing import CliRunner
from ops_api_support import (
    ALICE,
    ALICE_API_KEY,
    BOB,
    OPERATORS,
    OPS,
    Api,
    audit_use_cases,
    mint,
    record_issued,
    serve_api,
)

from broker._kits.jwt import InvalidToken, verify_any
from broker.audit import AuditFilter, AuditRecord, Page, SqlAuditStore
from broker.cli import main
from broker.cli.exit_codes import ExitCode
from broker.domain.errors import BrokerError, unavailable
from broker.usecases.access import is_operator, matches, owns
from broker.usecases.clusters import ClusterHandle
from broker.usecases.ports import RecordQuery

T = datetime(2030, 1, 1, tzinfo=UTC)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_visibility_rules() -> None:
    record = AuditRecord(id="t", time=T, event="issued", caller_user="alice", caller_method="mtls")
    assert owns(ALICE, record) and not owns(ALICE_API_KEY, record) and not owns(BOB, record)
    assert is_operator(OPS, (OPERATORS,)) and not is_operator(ALICE, (OPERATORS,))
    assert not is_operator(OPS, ())


def test_matches_mirrors_the_store_filter() -> None:
    record = AuditRecord(
        id="t", time=T, event="issued", caller_user="alice", caller_method="mtls", role="deployer",
        namespace="ci", cluster="sim", expires_at=T + timedelta(minutes=10),
    )  # fmt: skip
    assert matches(record, AuditFilter(), T)
    assert matches(record, AuditFilter(caller="alice", role="deployer", namespace="ci", cluster="sim"), T)
    assert not matches(record, AuditFilter(role="viewer"), T)
    assert matches(record, AuditFilter(since=T, until=T + timedelta(seconds=1)), T)
    assert not matches(record, AuditFilter(until=T), T)  # until is exclusive
    assert matches(record, AuditFilter(active=True), T)
    assert matches(record, AuditFilter(active=False), T + timedelta(minutes=10))
    assert not matches(replace(record, event="revoked"), AuditFilter(active=True), T)
    assert matches(record, AuditFilter(token_id="t", event="issued"), T)


async def test_verify_any_checks_signature_algorithm_and_issuer(
    cluster: ClusterHandle, store: SqlAuditStore
) -> None:
    minted = await mint(store, cluster, ALICE)
    keys = cluster.verifier.jwks
    issuer = await cluster.verifier.issuer()
    verified = await verify_any(minted.token, keys, issuer=issuer)
    assert verified.claims["jti"] == minted.record.jti and verified.header["alg"] == "RS256"
    assert verified.expires_at == minted.record.expires_at
    assert not verified.expired(datetime.now(UTC))
    assert verified.expired(datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(InvalidToken, match="issuer"):
        await verify_any(minted.token, keys, issuer="https://elsewhere.example")

    header, payload, _ = minted.token.split(".")
    kid = jwt.get_unverified_header(minted.token)["kid"]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    unsigned = f"{b64({'alg': 'none', 'kid': kid})}.{payload}."
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify_any(unsigned, keys, issuer=issuer)
    # the classic confusion: HMAC keyed with the public key; HS* is never a service-account algorithm
    hmac = jwt.encode(claims, "public-key-as-secret-" + "k" * 32, algorithm="HS256", headers={"kid": kid})
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify_any(hmac, keys, issuer=issuer)
    with pytest.raises(InvalidToken, match="kid"):
        await verify_any(
            f"{b64({'alg': 'RS256'})}.{payload}.{minted.token.split('.')[2]}", keys, issuer=issuer
        )
    with pytest.raises(InvalidToken, match="which the key set does not publish"):
        await verify_any(
            f"{b64({'alg': 'RS256', 'kid': 'other'})}.{payload}.{minted.token.split('.')[2]}",
            keys,
            issuer=issuer,
        )
    tampered = f"{header}.{b64({**claims, 'sub': 'system:serviceaccount:kube-system:admin'})}.{minted.token.split('.')[2]}"
    with pytest.raises(InvalidToken):
        await verify_any(tampered, keys, issuer=issuer)
    with pytest.raises(InvalidToken, match="malformed"):
        await verify_any("not-a-token", keys, issuer=issuer)


async def test_exports_are_bounded_and_consistent(store: SqlAuditStore) -> None:
    for i in range(12):
        await record_issued(store, OPS if i % 2 else ALICE, began=T - timedelta(seconds=i))
    ops = audit_use_cases(store, {}, clock=lambda: T, export_page=5)
    every = [r async for r in ops.records.export_tokens(OPS, RecordQuery(), 1000)]
    assert len(every) == 12 and len({r.id for r in every}) == 12
    assert [r.time for r in every] == sorted((r.time for r in every), reverse=True)
    assert len([r async for r in ops.records.export_tokens(OPS, RecordQuery(), 7)]) == 7
    assert len([r async for r in ops.records.export_events(ALICE, RecordQuery(), 1000)]) == 6
    # a page's cursor continues an export where the page ended
    first = await ops.records.list_tokens(OPS, RecordQuery(limit=4))
    rest = [r async for r in ops.records.export_tokens(OPS, RecordQuery(cursor=first.next_cursor), 1000)]
    assert [r.id for r in first.items] + [r.id for r in rest] == [r.id for r in every]


class FailingReads:
    """The real store, whose reads start failing after `good` queries (a database that goes away mid-export)."""

    def __init__(self, store: SqlAuditStore, good: int) -> None:
        self._store = store
        self._good = good

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def query_issuances(
        self, f: AuditFilter, cursor: str | None = None, limit: int = 50, **kw: Any
    ) -> Page:
        if self._good <= 0:
            raise unavailable("audit store unavailable", reason="test: reads fail now")
        self._good -= 1
        return await self._store.query_issuances(f, cursor, limit, **kw)


async def test_an_export_the_store_fails_midway_is_cut_off_not_passed_as_complete(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    for i in range(40):
        await record_issued(store, OPS, began=T - timedelta(seconds=i))
    api: Api = await make_api(None)  # for its PKI and client; the server under test is built here
    ops = audit_use_cases(FailingReads(store, good=3), {}, export_page=5)  # type: ignore[arg-type]
    runner, url = await serve_api(api.pki, ops)
    try:
        async with api.session.get(
            url + "/v1/tokens?format=jsonl", ssl=api.pki.client_context("ops")
        ) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        # the CLI says the output is incomplete and fails
        ops.records._store = FailingReads(store, good=3)  # type: ignore[assignment]
        args = ["audit", "export", "--broker", url, "--cacert", str(api.pki.path("server-ca.crt")),
                "--cert", str(api.pki.path("ops.crt")), "--key", str(api.pki.path("ops.key"))]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == ExitCode.UNAVAILABLE and "incomplete" in result.stderr
        assert len(result.stdout.splitlines()) < 40
        # failing on the first page: still a clean problem+json
        failing_now = audit_use_cases(FailingReads(store, good=0), {})  # type: ignore[arg-type]
        runner2, url2 = await serve_api(api.pki, failing_now)
        try:
            async with api.session.get(
                url2 + "/v1/tokens?format=jsonl", ssl=api.pki.client_context("ops")
            ) as response:
                assert response.status == 503
                assert response.content_type == "application/problem+json"
        finally:
            await runner2.cleanup()
    finally:
        await runner.cleanup()


async def test_revoke_and_introspect_of_unknown_things(store: SqlAuditStore) -> None:
    ops = audit_use_cases(store, {})
    with pytest.raises(BrokerError) as info:
        await ops.revocation.revoke(OPS, "no-such-id")
    assert info.value.status == 404
    assert (await ops.introspection.introspect(OPS, "")).record is None
    no_jti = f"{b64({'alg': 'RS256', 'kid': 'k'})}.{b64({'iss': 'x', 'sub': 'y'})}.sig"
    assert await ops.introspection.introspect(OPS, no_jti) == (
        await ops.introspection.introspect(OPS, "a.b.c")
    )
    await asyncio.sleep(0)
