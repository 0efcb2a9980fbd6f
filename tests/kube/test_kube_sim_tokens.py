"""TokenRequest, bound Secrets, legacy Secret tokens and verification, against the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kube_support import MakeClient

from broker.domain.errors import BrokerError
from broker.kube import LEGACY_FOR_LABEL, Cluster, ClusterTokenVerifier, SecretRef, TokenResponse
from kubesim import KubeSim, SimOptions

NS, SA = "default", "deployer"
SUBJECT = f"system:serviceaccount:{NS}:{SA}"


async def review(admin: Cluster, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences or []},
    }
    answer = await admin.api.post_json("/apis/authentication.k8s.io/v1/tokenreviews", body)
    status: dict[str, Any] = answer["status"]
    return status


async def issue(
    admin: Cluster, *, audiences: list[str], ttl: int = 600, bind: bool = True
) -> tuple[TokenResponse, SecretRef | None]:
    await admin.accounts.ensure(NS, SA)
    secret = await admin.secrets.create_binding(NS, service_account=SA) if bind else None
    token = await admin.tokens.request(
        NS, SA, audiences=audiences, expiration_seconds=ttl, bound_secret=secret
    )
    return token, secret


async def test_round_trip_verifies(kubesim: KubeSim, admin: Cluster) -> None:
    token, secret = await issue(admin, audiences=["vault", "argo"])
    assert token.expiration_seconds == 600 and token.warnings == ()
    assert "token=" not in repr(token) and token.token not in repr(token)
    verifier = ClusterTokenVerifier(admin.discovery)
    got = await verifier.verify_bound(
        token.token,
        expected_audiences=["vault", "argo"],
        expected_subject=SUBJECT,
        expected_ttl_seconds=token.expiration_seconds,
        expected_secret=secret,
    )
    assert await verifier.issuer() == kubesim.url
    assert got.audiences == ("vault", "argo")
    assert secret is not None and (got.bound_secret_name, got.bound_secret_uid) == (secret.name, secret.uid)
    assert abs((got.expires_at - token.expiration_timestamp).total_seconds()) <= 1
    sa = await admin.accounts.ensure(NS, SA)
    assert got.service_account_uid == sa.uid
    # the simulator agrees: the token authenticates as the service account, with its jti
    status = await review(admin, token.token, ["vault"])
    assert status["authenticated"] is True
    assert status["user"]["username"] == SUBJECT
    assert status["user"]["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={got.jti}"]


async def test_default_audiences_are_the_api_audiences(kubesim: KubeSim, admin: Cluster) -> None:
    token, _ = await issue(admin, audiences=[], bind=False)
    got = await ClusterTokenVerifier(admin.discovery).verify_bound(
        token.token,
        expected_audiences=[kubesim.url],
        expected_subject=SUBJECT,
        expected_ttl_seconds=token.expiration_seconds,
        expected_secret=None,
    )
    assert got.audiences == (kubesim.url,) and got.bound_secret_name is None


async def test_max_expiration_cap_is_reported(kubesim: KubeSim, admin: Cluster) -> None:
    kubesim.ctx.options.max_token_expiration = 3600
    token, secret = await issue(admin, audiences=["vault"], ttl=7200)
    assert token.expiration_seconds == 3600
    assert token.warnings == ("requested expiration of 7200 seconds shortened to 3600 seconds",)
    verifier = ClusterTokenVerifier(admin.discovery)
    got = await verifier.verify_bound(
        token.token,
        expected_audiences=["vault"],
        expected_subject=SUBJECT,
        expected_ttl_seconds=token.expiration_seconds,
        expected_secret=secret,
    )
    assert got.lifetime_seconds == 3600
    with pytest.raises(BrokerError, match="not the 7200 s granted"):
        await verifier.verify_bound(
            token.token,
            expected_audiences=["vault"],
            expected_subject=SUBJECT,
            expected_ttl_seconds=7200,
            expected_secret=secret,
        )


async def test_too_short_expiration_is_422_with_the_servers_reason(admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    with pytest.raises(BrokerError) as info:
        await admin.tokens.request(NS, SA, audiences=[], expiration_seconds=60)
    assert info.value.status == 422
    assert "may not specify a duration less than 10 minutes" in info.value.detail


async def test_deleting_the_bound_secret_revokes(
    kubesim: KubeSim, admin: Cluster, make_client: MakeClient, tmp_path: Path
) -> None:
    token, secret = await issue(admin, audiences=[])  # API audiences: usable against the API server itself
    assert secret is not None
    as_token = await make_client(kubesim.write_kubeconfig(tmp_path / "sa.kubeconfig", token=token.token))
    await as_token.api.get_json("/version")
    status = await as_token.api.post_json(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status["status"]["userInfo"]["username"] == SUBJECT

    assert await admin.secrets.delete(NS, secret.name, uid=secret.uid) is True
    failed = await review(admin, token.token)
    # `authenticated: false` is omitted (omitempty), the reason is in status.error
    assert not failed.get("authenticated") and failed.get("error")
    with pytest.raises(BrokerError) as info:
        await as_token.api.get_json(f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}")
    assert info.value.status == 502 and "broker's own credentials" in info.value.detail


async def test_request_against_a_deleted_secret(admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    secret = await admin.secrets.create_binding(NS, service_account=SA)
    await admin.secrets.delete(NS, secret.name)
    with pytest.raises(BrokerError) as info:
        await admin.tokens.request(NS, SA, audiences=[], expiration_seconds=600, bound_secret=secret)
    assert info.value.status == 502 and secret.name in info.value.detail
    # the account itself stays cached: it was the secret that was missing
    recreated = await admin.secrets.create_binding(NS, service_account=SA)
    stale = SecretRef(NS, recreated.name, "0000-not-the-uid")
    with pytest.raises(BrokerError) as info:
        await admin.tokens.request(NS, SA, audiences=[], expiration_seconds=600, bound_secret=stale)
    assert info.value.status == 502 and "binding secret changed" in info.value.detail


# -- verification failures ---------------------------------------------------------------------------------------
async def test_token_from_another_cluster_is_refused(
    admin: Cluster, make_client: MakeClient, tmp_path: Path
) -> None:
    async with KubeSim(SimOptions(), state_dir=tmp_path / "other") as other:
        assert other.admin_kubeconfig is not None
        foreign_admin = await make_client(other.admin_kubeconfig)
        await foreign_admin.accounts.ensure(NS, SA)
        foreign = await foreign_admin.tokens.request(NS, SA, audiences=["vault"], expiration_seconds=600)
    await admin.accounts.ensure(NS, SA)
    verifier = ClusterTokenVerifier(admin.discovery, refetch_cooldown=0)
    with pytest.raises(BrokerError) as info:
        await verifier.verify_bound(
            foreign.token,
            expected_audiences=["vault"],
            expected_subject=SUBJECT,
            expected_ttl_seconds=600,
            expected_secret=None,
        )
    assert info.value.status == 502
    assert "does not verify" in info.value.detail


async def test_tampered_wrong_audience_wrong_subject(admin: Cluster) -> None:
    token, secret = await issue(admin, audiences=["vault"])
    verifier = ClusterTokenVerifier(admin.discovery)
    args: dict[str, Any] = {
        "expected_audiences": ["vault"],
        "expected_subject": SUBJECT,
        "expected_ttl_seconds": 600,
        "expected_secret": secret,
    }
    await verifier.verify_bound(token.token, **args)

    head, payload, sig = token.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = ["vault", "kubernetes"]
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    cases = [
        (f"{head}.{tampered}.{sig}", args, "Signature verification failed"),
        (token.token, {**args, "expected_audiences": ["argo"]}, "lack ['argo']"),
        (token.token, {**args, "expected_subject": f"system:serviceaccount:{NS}:admin"}, "subject"),
        (token.token, {**args, "expected_secret": SecretRef(NS, "other", "x")}, "bound to secret"),
    ]
    for bad, kwargs, match in cases:
        with pytest.raises(BrokerError) as info:
            await verifier.verify_bound(bad, **kwargs)
        assert info.value.status == 502 and match in info.value.detail


async def test_key_rotation_is_followed(kubesim: KubeSim, admin: Cluster) -> None:
    verifier = ClusterTokenVerifier(admin.discovery, refetch_cooldown=0)
    for alg in ("RS256", "ES256", "ES384"):
        if alg != "RS256":
            kubesim.ctx.keys.rotate(alg)
        token, secret = await issue(admin, audiences=["vault"])
        got = await verifier.verify_bound(
            token.token,
            expected_audiences=["vault"],
            expected_subject=SUBJECT,
            expected_ttl_seconds=600,
            expected_secret=secret,
        )
        assert got.subject == SUBJECT
    assert verifier.jwks.fetches == 3


async def test_external_jwks_uri_is_fetched_from_the_api_server(
    tmp_path: Path, make_client: MakeClient
) -> None:
    options = SimOptions(
        issuer="https://oidc.example.com", jwks_uri="https://oidc.example.com/openid/v1/jwks"
    )
    async with KubeSim(options, state_dir=tmp_path / "ext") as sim:
        assert sim.admin_kubeconfig is not None
        client = await make_client(sim.admin_kubeconfig)
        assert await client.discovery.discover_issuer() == (
            "https://oidc.example.com",
            "https://oidc.example.com/openid/v1/jwks",
        )
        token, secret = await issue(client, audiences=["vault"])
        got = await ClusterTokenVerifier(client.discovery).verify_bound(
            token.token,
            expected_audiences=["vault"],
            expected_subject=SUBJECT,
            expected_ttl_seconds=600,
            expected_secret=secret,
        )
        assert got.issuer == "https://oidc.example.com"


async def test_configured_issuer_must_match(kubesim: KubeSim, admin: Cluster) -> None:
    token, secret = await issue(admin, audiences=["vault"])
    with pytest.raises(BrokerError, match="issuer"):
        await ClusterTokenVerifier(admin.discovery, issuer="https://elsewhere").verify_bound(
            token.token,
            expected_audiences=["vault"],
            expected_subject=SUBJECT,
            expected_ttl_seconds=600,
            expected_secret=secret,
        )


# -- legacy Secret tokens ------------------------------------------------------------------------------------------
async def test_legacy_token_waits_for_the_controller(kubesim: KubeSim, admin: Cluster) -> None:
    kubesim.ctx.options.legacy_token_delay = 0.3
    sa = await admin.accounts.ensure(NS, "jenkins")
    results = await asyncio.gather(
        *(admin.legacy.token(NS, "jenkins", wait_timeout=5, labels={"l": "v"}) for _ in range(5))
    )
    assert len({r.secret_name for r in results}) == 1
    legacy = results[0]
    assert legacy.service_account_uid == sa.uid
    secret = await admin.api.get_json(f"/api/v1/namespaces/{NS}/secrets/{legacy.secret_name}")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["labels"][LEGACY_FOR_LABEL] == "jenkins"
    assert secret["metadata"]["labels"]["l"] == "v"
    got = await ClusterTokenVerifier(admin.discovery).verify_legacy(
        legacy.token, namespace=NS, service_account="jenkins"
    )
    assert got.secret_name == legacy.secret_name and got.service_account_uid == sa.uid
    # found again, not created again
    again = await admin.legacy.token(NS, "jenkins", wait_timeout=5)
    assert again.secret_name == legacy.secret_name and again.token == legacy.token
    listed = await admin.api.get_json(f"/api/v1/namespaces/{NS}/secrets")
    assert sum(1 for s in listed["items"] if s["type"] == "kubernetes.io/service-account-token") == 1


async def test_legacy_token_timeout_is_503_and_resumes(kubesim: KubeSim, admin: Cluster) -> None:
    kubesim.ctx.options.legacy_token_delay = 0.5
    await admin.accounts.ensure(NS, "slow")
    with pytest.raises(BrokerError) as info:
        await admin.legacy.token(NS, "slow", wait_timeout=0.1)
    assert info.value.status == 503 and info.value.retry_after
    legacy = await admin.legacy.token(NS, "slow", wait_timeout=5)
    listed = await admin.api.get_json(f"/api/v1/namespaces/{NS}/secrets")
    names = [
        s["metadata"]["name"] for s in listed["items"] if s["type"] == "kubernetes.io/service-account-token"
    ]
    assert names == [legacy.secret_name]


async def test_legacy_token_for_a_missing_account(admin: Cluster) -> None:
    with pytest.raises(BrokerError) as info:
        await admin.legacy.token(NS, "nobody", wait_timeout=5)
    assert info.value.status == 502 and "token controller deleted" in info.value.detail
