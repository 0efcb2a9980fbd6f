"""In-cluster callers: service-account tokens made by the real kubectl, checked with TokenReviews that the
simulator and the real kube-apiserver answer. Reviews are counted in each server's request (audit) log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS, fresh_name, kubectl_binary
from cluster_admin import ClusterAdmin
from oidc_issuer import AUDIENCE, Clock, policy_from, serve_edge
from support.processes import kubectl

from broker.callers import (
    CallerRequest,
    OidcAuthenticator,
    OidcIssuer,
    OidcSettings,
    TokenReviewAuthenticator,
)
from broker.domain.errors import BrokerError
from broker.kube import Cluster
from broker.kube.reviews import TOKEN_REVIEWS_PATH
from kubesim import KubeSim


class Backend:
    """Either API server, with a namespace of this test's own (the real one is shared by the session)."""

    def __init__(self, cluster: Any, real: bool, namespace: str, root: Path) -> None:
        self.cluster = cluster
        self.real = real
        self.namespace = namespace
        self.kubectl = kubectl_binary(real)
        admin = cluster.client_cert("admin", ["system:masters"])
        self.admin_kubeconfig = cluster.write_kubeconfig(
            root / "admin.kubeconfig", cert=admin, namespace=namespace
        )

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")

    def user(self, account: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{account}"

    async def run(self, kubeconfig: Path, *args: str) -> str:
        done = await kubectl(kubeconfig, *args, binary=self.kubectl)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    async def reviews(self) -> int:
        """TokenReviews the API server completed. The real server logs a request just after answering it, so
        read until two looks agree."""
        count = -1
        while True:
            seen = sum(
                1 for e in self.cluster.audit_events if e.path == TOKEN_REVIEWS_PATH and e.method == "POST"
            )
            if seen == count or not self.real:
                return seen
            count = seen
            await asyncio.sleep(0.3)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    namespace = fresh_name("callers")
    if request.param == "sim":
        async with KubeSim(state_dir=tmp_path / "kubesim") as sim:
            await ClusterAdmin(sim).namespace(namespace)
            yield Backend(sim, False, namespace, tmp_path)
    else:
        plane = request.getfixturevalue("control_plane")
        await ClusterAdmin(plane).namespace(namespace)
        yield Backend(plane, True, namespace, tmp_path)


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[Cluster]:
    async with await Cluster.connect(
        "sim", kubeconfig=backend.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
    ) as c:
        yield c


@pytest.fixture
async def agent(backend: Backend) -> Path:
    """The admin kubeconfig, after `kubectl create serviceaccount agent`."""
    await backend.run(backend.admin_kubeconfig, "create", "serviceaccount", "agent")
    return backend.admin_kubeconfig


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer(client: Cluster, clock: Clock) -> TokenReviewAuthenticator:
    return TokenReviewAuthenticator(lambda: client.reviews, audiences=[AUDIENCE], cluster="sim", clock=clock)


def bearer(token: str) -> CallerRequest:
    return CallerRequest(headers={"Authorization": f"Bearer {token}"})


async def refused(authenticator: TokenReviewAuthenticator, token: str) -> BrokerError:
    with pytest.raises(BrokerError) as err:
        await authenticator.authenticate(bearer(token))
    return err.value


async def eventually_refused(
    authenticator: TokenReviewAuthenticator, token: str, clock: Clock, *, within: float
) -> BrokerError:
    """Refused now (the simulator) or within `within` real seconds (a real server's informer and cache); each
    look moves the broker's own cache clock past its lifetime so that only the server's answer counts."""
    deadline = time.monotonic() + within
    while True:
        try:
            await authenticator.authenticate(bearer(token))
        except BrokerError as err:
            return err
        assert time.monotonic() < deadline, f"the token was still accepted after {within} s"
        clock.now += 11
        await asyncio.sleep(0.25)


async def test_a_service_account_token_authenticates(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    caller = await reviewer.authenticate(bearer(token))
    assert caller is not None
    assert caller.user == backend.user("agent")
    assert caller.groups == backend.groups
    assert caller.method == "kubernetes"
    [credential] = caller.claims["authentication.kubernetes.io/credential-id"]
    assert credential.startswith("JTI=")


async def test_a_token_for_another_audience_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    # the default audience is the API server's: such a token is for talking to Kubernetes, not to the broker
    err = await refused(reviewer, await backend.run(agent, "create", "token", "agent"))
    assert err.status == 401
    assert "TokenReview on cluster sim" in err.reason and "is invalid for the target audiences" in err.reason


async def test_a_token_whose_bound_secret_was_deleted_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend, clock: Clock
) -> None:
    for name in ("s1", "s2"):
        await backend.run(agent, "create", "secret", "generic", name)
    bound = [
        await backend.run(
            agent,
            "create",
            "token",
            "agent",
            "--audience",
            AUDIENCE,
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            name,
        )
        for name in ("s1", "s2")
    ]
    # s1's token was used before the Secret went away, s2's was not
    assert await reviewer.authenticate(bearer(bound[0])) is not None
    await backend.run(agent, "delete", "secret", "s1", "s2")

    # a real kube-apiserver sees the deletion through its Secret informer a moment later (and caches a success
    # in that moment for ~10 s)
    err = await eventually_refused(reviewer, bound[1], clock, within=15)
    assert err.status == 401 and "bearer token was not accepted" in err.detail
    assert "has been invalidated" in err.reason
    # like kube-apiserver, a success is reused for the cache lifetime: revocation lags by at most that much
    assert await reviewer.authenticate(bearer(bound[0])) is not None
    clock.now += 10
    # ... and the real server's own ~10 s cache of bound[0]'s earlier success comes on top of ours
    err = await eventually_refused(reviewer, bound[0], clock, within=15)
    assert err.status == 401 and "has been invalidated" in err.reason


async def test_a_token_of_a_deleted_service_account_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    await backend.run(agent, "delete", "serviceaccount", "agent")
    err = await refused(reviewer, token)
    assert err.status == 401 and 'serviceaccounts "agent" not found' in err.reason


async def test_reviews_are_cached_by_token_hash(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend, clock: Clock
) -> None:
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    before = await backend.reviews()
    first = await reviewer.authenticate(bearer(token))
    second = await reviewer.authenticate(bearer(token))
    assert first == second and first is not None
    assert await backend.reviews() == before + 1

    # another token of the same account is another review
    other = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    await reviewer.authenticate(bearer(other))
    assert await backend.reviews() == before + 2

    # past the cache lifetime, the API server is asked again
    clock.now += 10.5
    await reviewer.authenticate(bearer(token))
    assert await backend.reviews() == before + 3
    # the cache holds digests, never the token
    assert all(isinstance(k, bytes) and len(k) == 32 for k in reviewer._cache)
    assert token not in repr(vars(reviewer))


async def test_concurrent_requests_with_one_token_share_one_review(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    before = await backend.reviews()
    callers = await asyncio.gather(*(reviewer.authenticate(bearer(token)) for _ in range(20)))
    assert {c.user for c in callers if c is not None} == {backend.user("agent")}
    assert await backend.reviews() == before + 1


async def test_failures_are_not_cached(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    token = await backend.run(agent, "create", "token", "agent")  # wrong audience
    before = await backend.reviews()
    for _ in range(2):
        assert (await refused(reviewer, token)).status == 401
    assert await backend.reviews() == before + 2


@pytest.mark.parametrize("backend", ["sim"], indirect=True)
async def test_an_unavailable_api_server_is_a_503(
    agent: Path, reviewer: TokenReviewAuthenticator, backend: Backend
) -> None:
    kubesim = backend.cluster  # the simulator's fault switches
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    kubesim.faults.path_prefix = TOKEN_REVIEWS_PATH
    kubesim.faults.error_count, kubesim.faults.error_code = 1, 500
    err = await refused(reviewer, token)
    assert err.status == 503 and err.retry_after is not None
    kubesim.faults.outage = True
    assert (await refused(reviewer, token)).status == 503
    kubesim.faults.clear()
    assert await reviewer.authenticate(bearer(token)) is not None


async def test_a_broker_not_allowed_to_review_tokens_is_a_502(
    backend: Backend, agent: Path, tmp_path: Path
) -> None:
    # RBAC is on: a user with no binding may not create tokenreviews (403 → the broker is misconfigured)
    nobody = backend.cluster.client_cert("nobody")
    kubeconfig = backend.cluster.write_kubeconfig(tmp_path / "nobody.kubeconfig", cert=nobody)
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    async with await Cluster.connect(
        "sim", kubeconfig=kubeconfig, context=None, in_cluster=False, request_timeout=5
    ) as weak:
        authenticator = TokenReviewAuthenticator(lambda: weak.reviews, audiences=[AUDIENCE])
        err = await refused(authenticator, token)
    assert err.status == 502


async def test_a_cluster_not_connected_yet_is_a_503() -> None:
    authenticator = TokenReviewAuthenticator(lambda: None, audiences=[AUDIENCE], cluster="dev")
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    with pytest.raises(BrokerError) as err:
        await authenticator.authenticate(bearer(token))
    assert err.value.status == 503


async def test_requests_without_a_jwt_are_not_ours() -> None:
    authenticator = TokenReviewAuthenticator(lambda: None, audiences=[AUDIENCE])
    assert await authenticator.authenticate(CallerRequest()) is None
    assert await authenticator.authenticate(bearer("tb_opaque_key")) is None


async def test_behind_oidc_in_the_chain_over_http(agent: Path, client: Cluster, backend: Backend) -> None:
    """A service-account token is not from a configured OIDC issuer, so OIDC leaves it to the TokenReview."""
    oidc = OidcAuthenticator(
        [OidcIssuer(OidcSettings(issuer="https://gitlab.example.com", audience=AUDIENCE))],
        defer_unknown_issuers=True,
    )
    review = TokenReviewAuthenticator(lambda: client.reviews, audiences=[AUDIENCE])
    policy = policy_from(
        [{"name": "deployer", "service_account": "deployer", "namespaces": ["ci-*"], "max_ttl": "1h"}],
        [{"name": "agents", "users": [backend.user("agent")], "roles": ["deployer"]}],
    )
    token = await backend.run(agent, "create", "token", "agent", "--audience", AUDIENCE)
    async with serve_edge([oidc, review], policy) as edge:
        status, _, body = await edge.call("GET", "/v1/whoami", token)
        assert status == 200, body
        assert body["user"] == backend.user("agent")
        assert body["method"] == "kubernetes" and body["roles"] == ["deployer"]
        assert body["groups"] == list(backend.groups)
        assert token not in str(body)
        status, _, body = await edge.token(token, role="deployer", namespace="ci-builds")
        assert status == 201, body

        # a token nobody vouches for: refused by the cluster, nothing issued
        edge.issuer.requests.clear()
        status, headers, body = await edge.token(await backend.run(agent, "create", "token", "agent"))
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert edge.issuer.requests == []
