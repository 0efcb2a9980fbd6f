"""In-cluster callers: service-account tokens made by the real kubectl against the simulator, checked with
TokenReviews the simulator answers. Reviews are counted in the simulator's own request log."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from oidc_issuer import AUDIENCE, Clock, policy_from, serve_edge

from broker.callers import (
    CallerRequest,
    OidcAuthenticator,
    OidcIssuer,
    OidcSettings,
    TokenReviewAuthenticator,
)
from broker.callers.kubernetes import TOKEN_REVIEWS_PATH
from broker.errors import BrokerError
from broker.kube import ClusterClient
from broker.testing.kubesim import KubeSim

KUBECTL = "/usr/bin/kubectl"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")


async def kubectl(kubeconfig: Path, *args: str) -> str:
    home = kubeconfig.parent / ".kubectl-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    env["HOME"] = str(home)
    done = await asyncio.to_thread(
        subprocess.run,
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def reviews(sim: KubeSim) -> int:
    return sum(1 for e in sim.audit_events if e.path == TOKEN_REVIEWS_PATH and e.method == "POST")


@pytest.fixture
async def client(kubesim: KubeSim) -> AsyncIterator[ClusterClient]:
    assert kubesim.admin_kubeconfig is not None
    async with await ClusterClient.create(
        "sim", kubeconfig=kubesim.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
    ) as c:
        yield c


@pytest.fixture
async def agent(kubesim: KubeSim) -> Path:
    """The admin kubeconfig, after `kubectl create serviceaccount agent`."""
    assert kubesim.admin_kubeconfig is not None
    await kubectl(kubesim.admin_kubeconfig, "create", "serviceaccount", "agent")
    return kubesim.admin_kubeconfig


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer(client: ClusterClient, clock: Clock) -> TokenReviewAuthenticator:
    return TokenReviewAuthenticator(lambda: client, audiences=[AUDIENCE], cluster="sim", clock=clock)


def bearer(token: str) -> CallerRequest:
    return CallerRequest(headers={"Authorization": f"Bearer {token}"})


async def refused(authenticator: TokenReviewAuthenticator, token: str) -> BrokerError:
    with pytest.raises(BrokerError) as err:
        await authenticator.authenticate(bearer(token))
    return err.value


async def test_a_service_account_token_authenticates(agent: Path, reviewer: TokenReviewAuthenticator) -> None:
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    caller = await reviewer.authenticate(bearer(token))
    assert caller is not None
    assert caller.user == "system:serviceaccount:default:agent"
    assert caller.groups == SA_GROUPS
    assert caller.method == "kubernetes"
    [credential] = caller.claims["authentication.kubernetes.io/credential-id"]
    assert credential.startswith("JTI=")


async def test_a_token_for_another_audience_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator
) -> None:
    # the default audience is the API server's: such a token is for talking to Kubernetes, not to the broker
    err = await refused(reviewer, await kubectl(agent, "create", "token", "agent"))
    assert err.status == 401
    assert "TokenReview on cluster sim" in err.reason and "is invalid for the target audiences" in err.reason


async def test_a_token_whose_bound_secret_was_deleted_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator, kubesim: KubeSim, clock: Clock
) -> None:
    for name in ("s1", "s2"):
        await kubectl(agent, "create", "secret", "generic", name)
    bound = [
        await kubectl(
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
    await kubectl(agent, "delete", "secret", "s1", "s2")

    err = await refused(reviewer, bound[1])
    assert err.status == 401 and "bearer token was not accepted" in err.detail
    assert "has been invalidated" in err.reason
    # like kube-apiserver, a success is reused for the cache lifetime: revocation lags by at most that much
    assert await reviewer.authenticate(bearer(bound[0])) is not None
    clock.now += 10
    err = await refused(reviewer, bound[0])
    assert err.status == 401 and "has been invalidated" in err.reason


async def test_a_token_of_a_deleted_service_account_is_refused(
    agent: Path, reviewer: TokenReviewAuthenticator
) -> None:
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    await kubectl(agent, "delete", "serviceaccount", "agent")
    err = await refused(reviewer, token)
    assert err.status == 401 and 'serviceaccounts "agent" not found' in err.reason


async def test_reviews_are_cached_by_token_hash(
    agent: Path, reviewer: TokenReviewAuthenticator, kubesim: KubeSim, clock: Clock
) -> None:
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    before = reviews(kubesim)
    first = await reviewer.authenticate(bearer(token))
    second = await reviewer.authenticate(bearer(token))
    assert first == second and first is not None
    assert reviews(kubesim) == before + 1

    # another token of the same account is another review
    other = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    await reviewer.authenticate(bearer(other))
    assert reviews(kubesim) == before + 2

    # past the cache lifetime, the API server is asked again
    clock.now += 10.5
    await reviewer.authenticate(bearer(token))
    assert reviews(kubesim) == before + 3
    # the cache holds digests, never the token
    assert all(isinstance(k, bytes) and len(k) == 32 for k in reviewer._cache)
    assert token not in repr(vars(reviewer))


async def test_concurrent_requests_with_one_token_share_one_review(
    agent: Path, reviewer: TokenReviewAuthenticator, kubesim: KubeSim
) -> None:
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    before = reviews(kubesim)
    callers = await asyncio.gather(*(reviewer.authenticate(bearer(token)) for _ in range(20)))
    assert {c.user for c in callers if c is not None} == {"system:serviceaccount:default:agent"}
    assert reviews(kubesim) == before + 1


async def test_failures_are_not_cached(
    agent: Path, reviewer: TokenReviewAuthenticator, kubesim: KubeSim
) -> None:
    token = await kubectl(agent, "create", "token", "agent")  # wrong audience
    before = reviews(kubesim)
    for _ in range(2):
        assert (await refused(reviewer, token)).status == 401
    assert reviews(kubesim) == before + 2


async def test_an_unavailable_api_server_is_a_503(
    agent: Path, reviewer: TokenReviewAuthenticator, kubesim: KubeSim
) -> None:
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    kubesim.faults.path_prefix = TOKEN_REVIEWS_PATH
    kubesim.faults.error_count, kubesim.faults.error_code = 1, 500
    err = await refused(reviewer, token)
    assert err.status == 503 and err.retry_after is not None
    kubesim.faults.outage = True
    assert (await refused(reviewer, token)).status == 503
    kubesim.faults.clear()
    assert await reviewer.authenticate(bearer(token)) is not None


async def test_a_broker_not_allowed_to_review_tokens_is_a_502(
    kubesim: KubeSim, agent: Path, tmp_path: Path
) -> None:
    # RBAC is on: a user with no binding may not create tokenreviews (403 → the broker is misconfigured)
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "nobody.kubeconfig", cert=kubesim.client_cert("nobody"))
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    async with await ClusterClient.create(
        "sim", kubeconfig=kubeconfig, context=None, in_cluster=False, request_timeout=5
    ) as weak:
        authenticator = TokenReviewAuthenticator(lambda: weak, audiences=[AUDIENCE])
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


async def test_behind_oidc_in_the_chain_over_http(
    agent: Path, client: ClusterClient, kubesim: KubeSim
) -> None:
    """A service-account token is not from a configured OIDC issuer, so OIDC leaves it to the TokenReview."""
    oidc = OidcAuthenticator(
        [OidcIssuer(OidcSettings(issuer="https://gitlab.example.com", audience=AUDIENCE))],
        defer_unknown_issuers=True,
    )
    review = TokenReviewAuthenticator(lambda: client, audiences=[AUDIENCE])
    policy = policy_from(
        [{"name": "deployer", "service_account": "deployer", "namespaces": ["ci-*"], "max_ttl": "1h"}],
        [{"name": "agents", "users": ["system:serviceaccount:default:agent"], "roles": ["deployer"]}],
    )
    token = await kubectl(agent, "create", "token", "agent", "--audience", AUDIENCE)
    async with serve_edge([oidc, review], policy) as edge:
        status, _, body = await edge.call("GET", "/v1/whoami", token)
        assert status == 200, body
        assert body["user"] == "system:serviceaccount:default:agent"
        assert body["method"] == "kubernetes" and body["roles"] == ["deployer"]
        assert body["groups"] == list(SA_GROUPS)
        assert token not in str(body)
        status, _, body = await edge.token(token, role="deployer", namespace="ci-builds")
        assert status == 201, body

        # a token nobody vouches for: refused by the cluster, nothing issued
        edge.issuer.requests.clear()
        status, headers, body = await edge.token(await kubectl(agent, "create", "token", "agent"))
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert edge.issuer.requests == []
