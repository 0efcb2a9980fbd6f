"""A real broker HTTP edge (TLS, client certificates, API keys) with the real audit use cases over a real SQLite audit
store and a real simulated cluster. Only the issuer is a stand-in: records are written through the store API,
tokens are minted through Cluster against the simulator, exactly the calls the issuer makes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from support.retry import FAST_RETRY
from support.served import TestPki, make_pki, request, serve

from broker._kits.jwt import decode_unverified
from broker._kits.pki import write_private
from broker.app.stores import make_sql_store
from broker.audit import AuditRecord, SecretBinding, SqlAuditStore
from broker.callers import ApiKeyAuthenticator, AuthenticatorChain, MtlsAuthenticator
from broker.domain.errors import ErrorKind, forbidden
from broker.domain.identity import Caller
from broker.domain.records import token_sha256
from broker.http import build_http_app
from broker.kube import Cluster, ClusterTokenVerifier
from broker.settings import AuditSettings
from broker.usecases.access import Visibility
from broker.usecases.clusters import ClusterHandle
from broker.usecases.introspection import Introspector
from broker.usecases.ports import IssuedToken, IssueRequest, RoleInfo
from broker.usecases.records import Records
from broker.usecases.revocation import Revocation, Revocations
from kubesim import KubeSim

OPERATORS = "token-broker:operators"
NS, SA = "default", "deployer"
CLUSTER = "sim"
# alice the API key is a namesake of alice the certificate: another caller as far as visibility goes
ALICE_KEY = "tb_alice_9f3kQz7vLw2NpX8r"

OPS = Caller("ops", (OPERATORS, "sre"), "mtls")
ALICE = Caller("alice", ("dev",), "mtls")
BOB = Caller("bob", ("dev",), "mtls")
ALICE_API_KEY = Caller("alice", ("ci",), "api-key")
CALLERS = {"ops": OPS, "alice": ALICE, "bob": BOB, "alice-key": ALICE_API_KEY}


@dataclass(frozen=True)
class AuditUseCases:
    """The audit trail's use cases (what the broker's app builds), over one store and the clusters."""

    records: Records
    revocation: Revocations
    introspection: Introspector


def audit_use_cases(
    store: Any,
    clusters: dict[str, ClusterHandle] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    export_page: int = 500,
) -> AuditUseCases:
    clusters = clusters or {}
    clock = clock or (lambda: datetime.now(UTC))
    visibility = Visibility(lambda: (OPERATORS,))
    kube = {name: handle.client for name, handle in clusters.items()}
    return AuditUseCases(
        Records(store, visibility, clock=clock, export_page=export_page),
        Revocations(store, Revocation(store, kube, clock=clock), visibility),
        Introspector(store, clusters, visibility, clock=clock),
    )


class NoIssuer:
    """These tests do not issue through HTTP: records come from the store API."""

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        raise forbidden(ErrorKind.NO_GRANT, "not in this test")

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        return []

    async def ready(self) -> list[str]:
        return []


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    callers = {name: (CALLERS[name].user, CALLERS[name].groups) for name in ("ops", "alice", "bob")}
    pki = make_pki(tmp_path_factory.mktemp("ops-api-pki"), callers, label="ops-api")
    write_private(pki.path("alice.apikey"), ALICE_KEY.encode())
    return pki


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlAuditStore]:
    settings = AuditSettings(sqlite_path=tmp_path / "audit.sqlite3", group_commit_max_delay_ms=1.0)
    s = make_sql_store(settings)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def cluster(kubesim: KubeSim) -> AsyncIterator[ClusterHandle]:
    assert kubesim.admin_kubeconfig is not None
    client = await Cluster.connect(
        CLUSTER,
        kubeconfig=kubesim.admin_kubeconfig,
        context=None,
        in_cluster=False,
        request_timeout=5.0,
        retry=FAST_RETRY,
    )
    verifier = ClusterTokenVerifier(client.discovery, refetch_cooldown=0)
    yield ClusterHandle(CLUSTER, client, verifier, client.server_url, client.ca_pem)
    await client.close()


@dataclass
class Api:
    """The broker's HTTP API, called as one of the test callers."""

    url: str
    pki: TestPki
    operations: AuditUseCases | None
    session: aiohttp.ClientSession
    clock: list[datetime] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        *,
        who: str | None = "ops",
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """As `who`: a caller's certificate, "alice-key" (alice's API key, no certificate) or None (neither)."""
        sent = dict(headers or {})
        if who == "alice-key":
            sent["X-API-Key"] = ALICE_KEY
        ctx = self.pki.client_context(None if who == "alice-key" else who)
        url = self.url + path
        return await request(
            self.session,
            method,
            url,
            ssl_context=ctx,
            headers=sent,
            params=params,
            json_body=json_body,
            data=data,
        )

    async def get_json(self, path: str, *, who: str = "ops", **params: str) -> dict[str, Any]:
        response, body = await self.call("GET", path, who=who, params=params)
        assert response.status == 200, body
        assert response.content_type == "application/json"
        doc: dict[str, Any] = json.loads(body)
        return doc

    async def all_pages(self, path: str, *, who: str = "ops", **params: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            page = await self.get_json(path, who=who, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("paging did not end")


async def serve_api(pki: TestPki, ops: AuditUseCases | None) -> tuple[web.AppRunner, str]:
    chain = AuthenticatorChain(
        [
            MtlsAuthenticator(),
            ApiKeyAuthenticator([("alice", hashlib.sha256(ALICE_KEY.encode()).hexdigest(), ("ci",))]),
        ]
    )
    app = build_http_app(
        authenticator=chain,
        issuance=NoIssuer(),
        max_body_bytes=32768,
        records=ops.records if ops else None,
        revocation=ops.revocation if ops else None,
        introspection=ops.introspection if ops else None,
    )
    return await serve(app, pki)


@pytest.fixture
async def make_api(pki: TestPki) -> AsyncIterator[Callable[..., Any]]:
    """`await make_api(store, clusters, clock=...)`: a served broker API with the real audit use cases."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(
        store: SqlAuditStore | None,
        clusters: dict[str, ClusterHandle] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        export_page: int = 500,
    ) -> Api:
        ops = None
        if store is not None:
            ops = audit_use_cases(store, clusters, clock=clock, export_page=export_page)
        runner, url = await serve_api(pki, ops)
        runners.append(runner)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20), trust_env=False)
        sessions.append(session)
        return Api(url, pki, ops, session)

    yield make
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


# -- records through the store API -------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def record_issued(
    store: SqlAuditStore,
    caller: Caller,
    *,
    began: datetime,
    role: str = "deployer",
    namespace: str = NS,
    cluster: str = CLUSTER,
    ttl: int = 900,
    jti: str | None = None,
    token: str | None = None,
    bound: SecretBinding | None = None,
    context: dict[str, str] | None = None,
    expires_at: datetime | None = None,
) -> AuditRecord:
    """A pending record committed, then completed: what the issuer writes around a TokenRequest."""
    token_id = str(uuid.uuid4())
    await store.begin_issuance(
        AuditRecord(
            id=token_id,
            time=began,
            event="pending",
            caller_user=caller.user,
            caller_method=caller.method,
            caller_groups=caller.groups,
            source_address="192.0.2.7",
            user_agent="pytest",
            role=role,
            cluster=cluster,
            namespace=namespace,
            service_account=SA,
            audiences=("https://kubernetes.default.svc",),
            ttl_requested=ttl,
            ttl_granted=ttl,
            context=context or {"job": "build-42"},
        )
    )
    return await store.complete_issuance(
        token_id,
        jti=jti or str(uuid.uuid4()),
        token_sha256=token_sha256(token) if token else _digest(token_id),
        issued_at=began,
        expires_at=expires_at or began + timedelta(seconds=ttl),
        bound_secret=bound,
        ttl_granted=ttl,
    )


@dataclass(frozen=True)
class Minted:
    token: str = field(repr=False)
    record: AuditRecord


async def mint(
    store: SqlAuditStore, handle: ClusterHandle, caller: Caller, *, bind: bool = True, role: str = "deployer"
) -> Minted:
    """A real token from the simulator (bound to a fresh Secret when `bind`), recorded as the issuer does."""
    client = handle.client
    await client.accounts.ensure(NS, SA)
    secret = await client.secrets.create_binding(NS, service_account=SA) if bind else None
    # empty audiences: the API audiences, so the token works against the simulator itself
    response = await client.tokens.request(NS, SA, audiences=[], expiration_seconds=600, bound_secret=secret)
    claims = decode_unverified(response.token).claims
    issued_at = datetime.fromtimestamp(claims["iat"], UTC)
    record = await record_issued(
        store,
        caller,
        began=datetime.now(UTC),
        role=role,
        jti=claims["jti"],
        token=response.token,
        ttl=600,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        bound=None if secret is None else SecretBinding(secret.namespace, secret.name, secret.uid),
    )
    assert record.issued_at == issued_at or record.issued_at is not None
    return Minted(response.token, record)


async def token_review(handle: ClusterHandle, token: str) -> dict[str, Any]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    answer = await handle.client.api.post_json("/apis/authentication.k8s.io/v1/tokenreviews", body)
    status: dict[str, Any] = answer["status"]
    return status


async def call_as_token(sim: KubeSim, token: str) -> int:
    """The status the simulator gives a request that presents `token` (401 once it is revoked)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=False) as session,
        session.get(
            sim.url + f"/api/v1/namespaces/{NS}/serviceaccounts",
            headers={"Authorization": f"Bearer {token}"},
            ssl=sim.client_ssl_context(),
        ) as response,
    ):
        return response.status
