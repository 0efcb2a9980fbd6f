"""Metrics recorded below the HTTP layer: every Kubernetes API round trip (verb/resource/code from the request
path), JWKS refreshes by kind of key set, and the janitor's active-tokens gauge counted from a real audit store.

Recording goes to the process-wide default registry (what /metrics serves), so the tests compare deltas."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from broker import metric_labels
from broker.app.stores import make_sql_store
from broker.audit import AuditRecord
from broker.audit.store import AuditStore
from broker.background.janitor import Janitor
from broker.background.leader import LeaseElector
from broker.callers.oidc import OidcIssuer, OidcSettings
from broker.domain.errors import BrokerError, unavailable
from broker.kube import Cluster
from broker.kube.request_labels import request_labels
from broker.kube.verify import ClusterTokenVerifier
from broker.settings import AuditSettings
from kubesim import KubeSim

NS = "default"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def kube_count(verb: str, resource: str, code: str) -> float:
    return sample("token_broker_kube_requests_total", verb=verb, resource=resource, code=code)


def kube_observed(verb: str, resource: str) -> float:
    return sample("token_broker_kube_request_duration_seconds_count", verb=verb, resource=resource)


class Delta:
    """Samples of the default registry before and after: `delta(fn, *args)` is how far fn's value moved."""

    def __init__(self) -> None:
        self._before: dict[tuple[Any, ...], float] = {}

    def __call__(self, fn: Callable[..., float], *args: str) -> float:
        key = (fn, *args)
        if key not in self._before:
            self._before[key] = fn(*args)
            return 0.0
        return fn(*args) - self._before[key]


# -- the (verb, resource) of a request path -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "labels"),
    [
        (
            "POST",
            "/api/v1/namespaces/ci-7/serviceaccounts/deployer/token",
            None,
            ("create", "serviceaccounts/token"),
        ),
        ("GET", "/api/v1/namespaces/ci-7/serviceaccounts/deployer", None, ("get", "serviceaccounts")),
        ("POST", "/api/v1/namespaces/ci-7/serviceaccounts", None, ("create", "serviceaccounts")),
        ("DELETE", "/api/v1/namespaces/ci-7/serviceaccounts/deployer", None, ("delete", "serviceaccounts")),
        ("GET", "/api/v1/namespaces/ci-7/secrets", {"labelSelector": "a=b"}, ("list", "secrets")),
        ("GET", "/api/v1/namespaces/ci-7/secrets", {"watch": "true"}, ("watch", "secrets")),
        ("GET", "/api/v1/namespaces/ci-7/secrets/token-broker-x", None, ("get", "secrets")),
        ("DELETE", "/api/v1/namespaces/ci-7/secrets/token-broker-x", None, ("delete", "secrets")),
        ("DELETE", "/api/v1/namespaces/ci-7/secrets", None, ("deletecollection", "secrets")),
        # the namespace itself (namespace_selector labels), and the collection of namespaces
        ("GET", "/api/v1/namespaces/ci-7", None, ("get", "namespaces")),
        ("GET", "/api/v1/namespaces", None, ("list", "namespaces")),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", None, ("create", "leases")),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/janitor", None, ("get", "leases")),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/janitor", None, ("update", "leases")),
        (
            "PATCH",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/janitor",
            None,
            ("patch", "leases"),
        ),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", None, ("create", "tokenreviews")),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", None, ("create", "selfsubjectreviews")),
        ("GET", "/.well-known/openid-configuration", None, ("get", "discovery")),
        ("GET", "/openid/v1/jwks", None, ("get", "jwks")),
        ("GET", "/openid/v1/jwks?x=1", None, ("get", "jwks")),
        # readiness pings /version: a discovery endpoint (system:discovery), not a resource
        ("GET", "/version", None, ("get", "discovery")),
        ("GET", "/apis/coordination.k8s.io/v1", None, ("get", "discovery")),
        ("get", "/api", None, ("get", "discovery")),
        # anything the broker does not call: never its name, namespace or unknown resource as a label
        ("GET", "/api/v1/namespaces/ci-7/pods/web-1", None, ("get", "other")),
        ("GET", "/api/v1/namespaces/ci-7/serviceaccounts/deployer/status", None, ("get", "other")),
        ("GET", "/metrics", None, ("get", "other")),
        ("POST", "/openid/v1/jwks", None, ("other", "jwks")),
        ("BREW", "/api/v1/namespaces/ci-7/secrets", None, ("other", "secrets")),
    ],
)
def test_request_labels(
    method: str, path: str, params: Mapping[str, str] | None, labels: tuple[str, str]
) -> None:
    assert request_labels(method, path, params) == labels


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "x"]), path=st.text(max_size=80)
)
def test_request_labels_stay_in_the_vocabularies(method: str, path: str) -> None:
    verb, resource = request_labels(method, "/" + path)
    assert verb in metric_labels.KUBE_VERBS | {"other"}
    assert resource in metric_labels.KUBE_RESOURCES | {"other"}


# -- the client against the simulator -------------------------------------------------------------------------


async def test_every_round_trip_is_counted_with_its_code(kubesim: KubeSim) -> None:
    delta = Delta()
    watched = [
        ("get", "serviceaccounts", "404"),
        ("create", "serviceaccounts", "201"),
        ("create", "serviceaccounts/token", "201"),
        ("create", "secrets", "201"),
        ("delete", "secrets", "200"),
        ("delete", "secrets", "404"),
        ("get", "discovery", "200"),
        ("get", "jwks", "200"),
        ("get", "discovery", "error"),
    ]
    for labels in watched:
        delta(kube_count, *labels)
    delta(kube_observed, "create", "serviceaccounts/token")

    client = await Cluster.connect(
        "sim", kubeconfig=kubesim.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
    )
    async with client:
        account = f"metrics-{uuid.uuid4().hex[:8]}"
        await client.accounts.ensure(NS, account)  # GET 404, then POST 201
        secret = await client.secrets.create_binding(NS, service_account=account)
        for _ in range(2):
            await client.tokens.request(
                NS, account, audiences=[], expiration_seconds=600, bound_secret=secret
            )
        assert await client.secrets.delete(NS, secret.name)
        assert not await client.secrets.delete(NS, secret.name)  # already gone: 404
        await client.discovery.ping()
        await client.discovery.discover_issuer()
        await client.discovery.fetch_jwks()
        await kubesim.stop()
        # no answer at all: code "error" (ping does not retry)
        with pytest.raises(BrokerError):
            await client.discovery.ping()

    assert {labels: delta(kube_count, *labels) for labels in watched} == {
        ("get", "serviceaccounts", "404"): 1,
        ("create", "serviceaccounts", "201"): 1,
        ("create", "serviceaccounts/token", "201"): 2,
        ("create", "secrets", "201"): 1,
        ("delete", "secrets", "200"): 1,
        ("delete", "secrets", "404"): 1,
        ("get", "discovery", "200"): 2,
        ("get", "jwks", "200"): 1,
        ("get", "discovery", "error"): 1,
    }
    assert delta(kube_observed, "create", "serviceaccounts/token") == 2


# -- JWKS refreshes ---------------------------------------------------------------------------------------------


def jwks_count(source: str, outcome: str) -> float:
    return sample("token_broker_jwks_refresh_total", source=source, outcome=outcome)


async def test_cluster_jwks_refreshes_are_counted_once_per_fetch(kubesim: KubeSim) -> None:
    delta = Delta()
    delta(jwks_count, "cluster", "success")
    delta(kube_count, "get", "jwks", "200")
    client = await Cluster.connect(
        "sim", kubeconfig=kubesim.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
    )
    async with client:
        verifier = ClusterTokenVerifier(client.discovery)
        await verifier.refresh()
        await verifier.refresh()
    assert delta(jwks_count, "cluster", "success") == 2
    assert delta(kube_count, "get", "jwks", "200") == 2


async def test_failed_and_unusable_key_sets_count_as_failures() -> None:
    delta = Delta()
    delta(jwks_count, "oidc", "failure")

    class Fetcher:
        """What an OIDC issuer's keys come through: here an unreachable issuer, or a document of no keys."""

        def __init__(self, answer: dict[str, Any] | BrokerError) -> None:
            self.answer = answer

        async def get(self, url: str, *, what: str) -> tuple[dict[str, Any], float | None]:
            if isinstance(self.answer, BrokerError):
                raise self.answer
            return self.answer, None

    settings = OidcSettings(issuer="https://example", audience="broker", jwks_uri="https://example/keys")
    for answer in (unavailable("issuer unreachable"), {"keys": [{"kty": "none-such", "kid": "k1"}]}):
        issuer = OidcIssuer(settings, Fetcher(answer))  # type: ignore[arg-type]
        with pytest.raises(BrokerError):
            await issuer.jwks.refresh()
    assert delta(jwks_count, "oidc", "failure") == 2


# -- the active-tokens gauge ------------------------------------------------------------------------------------


async def open_store(tmp: Path) -> AuditStore:
    store = make_sql_store(AuditSettings(sqlite_path=tmp / "audit.sqlite3", group_commit_max_delay_ms=1.0))
    await store.open()
    return store


async def issued(store: AuditStore, role: str, *, expires_in: timedelta, revoke: bool = False) -> str:
    token_id, now = str(uuid.uuid4()), datetime.now(UTC)
    await store.begin_issuance(
        AuditRecord(
            id=token_id,
            time=now,
            event="pending",
            caller_user="ci",
            caller_method="mtls",
            role=role,
            cluster="sim",
            namespace=NS,
            service_account=role,
        )
    )
    await store.complete_issuance(
        token_id,
        jti=str(uuid.uuid4()),
        token_sha256=hashlib.sha256(token_id.encode()).hexdigest(),
        issued_at=now - timedelta(minutes=1),
        expires_at=now + expires_in,
        ttl_granted=600,
    )
    if revoke:
        await store.mark_revoked(token_id, by="ops", at=now)
    return token_id


async def test_the_leader_publishes_live_tokens_by_role(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(tmp_path)
    try:
        for _ in range(3):
            await issued(store, "deployer", expires_in=timedelta(minutes=10))
        await issued(store, "reader", expires_in=timedelta(minutes=10))
        await issued(store, "reader", expires_in=timedelta(minutes=10), revoke=True)  # revoked: not live
        await issued(store, "reader", expires_in=-timedelta(seconds=1))  # past exp: not live
        seen: list[Mapping[str, int]] = []
        worker = Janitor(store, {}, None, interval=1, on_active_tokens=seen.append)
        result = await worker.sweep_once()
        assert result.leader
        assert seen == [{"deployer": 3, "reader": 1}]

        # bounded: with a limit of 2 records the gauge under-reports, and the log says so once
        seen.clear()
        small = Janitor(store, {}, None, interval=1, on_active_tokens=seen.append, active_count_limit=2)
        with caplog.at_level(logging.WARNING, logger="broker.background"):
            await small.sweep_once()
            await small.sweep_once()
        assert [sum(counts.values()) for counts in seen] == [2, 2]
        assert sum("under-reports" in r.getMessage() for r in caplog.records) == 1

        # the default hook is the gauge itself
        await Janitor(store, {}, None, interval=1).sweep_once()
        assert sample("token_broker_active_tokens", role="deployer") == 3
        assert sample("token_broker_active_tokens", role="reader") == 1
    finally:
        await store.close()


async def test_a_replica_that_does_not_lead_reports_nothing(tmp_path: Path, kubesim: KubeSim) -> None:
    store = await open_store(tmp_path)
    client = await Cluster.connect(
        "sim", kubeconfig=kubesim.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
    )
    try:
        await issued(store, "deployer", expires_in=timedelta(minutes=10))
        # never run: it holds no Lease
        elector = LeaseElector(
            client.leases,
            namespace=NS,
            name="janitor",
            identity="replica-b",
            lease_duration=15,
            renew_deadline=10,
            retry_period=2,
        )
        seen: list[Mapping[str, int]] = []
        result = await Janitor(store, {}, elector, interval=1, on_active_tokens=seen.append).sweep_once()
        assert not result.leader
        assert seen == [{}]
    finally:
        await client.close()
        await store.close()
