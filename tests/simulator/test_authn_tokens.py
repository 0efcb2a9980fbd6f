"""Bound-token authentication (token_auth) against a store populated directly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tokens_support import ISSUER, claims_of, create_node, create_pod, create_sa, create_secret, make_ctx

from kubesim.auth_cache import AuthCache
from kubesim.context import SimContext
from kubesim.kinds import PODS, SECRETS, SERVICEACCOUNTS
from kubesim.token_auth import authenticate_token, review_token
from kubesim.token_request import issue_token
from kubesim.tokens import KeyRing


def token_for(ctx: SimContext, sa: str = "sa1", namespace: str = "default", **spec: Any) -> str:
    body = issue_token(ctx, namespace, sa, {"spec": spec}).body
    token: str = body["status"]["token"]
    return token


def test_a_fresh_token_authenticates_as_its_service_account() -> None:
    ctx = make_ctx()
    sa = create_sa(ctx, "jenkins", "ci")
    token = token_for(ctx, "jenkins", "ci")
    user = authenticate_token(ctx, token)
    assert user is not None
    assert user.username == "system:serviceaccount:ci:jenkins"
    assert user.uid == sa["metadata"]["uid"]
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]
    assert user.extra == {"authentication.kubernetes.io/credential-id": [f"JTI={claims_of(token)['jti']}"]}


def test_review_reports_the_audience_intersection() -> None:
    ctx = make_ctx(api_audiences=["api", "other"])
    create_sa(ctx, "sa1")
    token = token_for(ctx, audiences=["vault", "api"])
    assert review_token(ctx, token).audiences == ["api"]
    assert review_token(ctx, token, ["vault"]).audiences == ["vault"]
    result = review_token(ctx, token, ["nope"])
    assert result.user is None
    assert (
        result.error
        == '[invalid bearer token, token audiences ["vault" "api"] is invalid for the target audiences ["nope"]]'
    )


def test_a_token_for_another_audience_does_not_open_the_api() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    assert authenticate_token(ctx, token_for(ctx, audiences=["vault"])) is None


def test_deleting_the_service_account_revokes_its_tokens() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    token = token_for(ctx)
    ctx.store.delete(SERVICEACCOUNTS, "default", "sa1")
    result = review_token(ctx, token)
    assert result.user is None and result.error == '[invalid bearer token, serviceaccounts "sa1" not found]'
    # a new account of the same name has another uid: the old token stays dead
    new = create_sa(ctx, "sa1")
    result = review_token(ctx, token)
    assert result.user is None
    old_uid = claims_of(token)["kubernetes.io"]["serviceaccount"]["uid"]
    assert (
        result.error
        == f"[invalid bearer token, service account UID ({new['metadata']['uid']}) does not match claim ({old_uid})]"
    )


def test_deleting_the_bound_secret_revokes_the_token() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    create_secret(ctx, "s1")
    token = token_for(ctx, boundObjectRef={"apiVersion": "v1", "kind": "Secret", "name": "s1"})
    assert authenticate_token(ctx, token) is not None
    ctx.store.delete(SECRETS, "default", "s1")
    result = review_token(ctx, token)
    assert (
        result.user is None
        and result.error == "[invalid bearer token, service account token has been invalidated]"
    )
    create_secret(ctx, "s1")  # recreated: another uid
    assert "secret UID" in review_token(ctx, token).error


def test_a_recently_deleted_object_is_honoured_for_the_leeway() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    secret = create_secret(ctx, "s1")
    token = token_for(ctx, boundObjectRef={"apiVersion": "v1", "kind": "Secret", "name": "s1"})
    # a deleted object lingers, deletionTimestamp set, while a finalizer holds it
    secret["metadata"]["finalizers"] = ["example.com/hold"]
    secret["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ctx.store.update(SECRETS, "default", secret)
    assert authenticate_token(ctx, token) is not None
    secret = ctx.store.get(SECRETS, "default", "s1")
    secret["metadata"]["deletionTimestamp"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120)
    )
    ctx.store.update(SECRETS, "default", secret)
    assert authenticate_token(ctx, token) is None


def test_pod_bound_token_carries_pod_and_node_in_extra() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    node = create_node(ctx, "node-a")
    pod = create_pod(ctx, "p1", "sa1", node="node-a")
    token = token_for(ctx, boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p1"})
    user = authenticate_token(ctx, token)
    assert user is not None
    assert user.extra == {
        "authentication.kubernetes.io/credential-id": [f"JTI={claims_of(token)['jti']}"],
        "authentication.kubernetes.io/node-name": ["node-a"],
        "authentication.kubernetes.io/node-uid": [node["metadata"]["uid"]],
        "authentication.kubernetes.io/pod-name": ["p1"],
        "authentication.kubernetes.io/pod-uid": [pod["metadata"]["uid"]],
    }
    ctx.store.delete(PODS, "default", "p1")
    assert authenticate_token(ctx, token) is None


def _signed(ctx: SimContext, **overrides: Any) -> str:
    """A bound token for sa1 with some claims replaced."""
    claims = claims_of(token_for(ctx))
    claims.update(overrides)
    return ctx.keys.sign(claims)


def test_expiry_not_before_and_issued_at_use_a_60_second_leeway() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    now = int(time.time())
    assert authenticate_token(ctx, _signed(ctx, exp=now - 30)) is not None
    assert (
        review_token(ctx, _signed(ctx, exp=now - 120)).error
        == "[invalid bearer token, service account token has expired]"
    )
    assert authenticate_token(ctx, _signed(ctx, nbf=now + 30)) is not None
    assert (
        review_token(ctx, _signed(ctx, nbf=now + 120)).error
        == "[invalid bearer token, service account token is not valid yet]"
    )
    assert authenticate_token(ctx, _signed(ctx, iat=now + 120)) is None


def test_a_single_string_audience_is_accepted() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    assert authenticate_token(ctx, _signed(ctx, aud=ISSUER)) is not None


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Zm9v.YmFy.YmF6"])
def test_unrecognised_tokens_get_the_generic_error(token: str) -> None:
    ctx = make_ctx()
    result = review_token(ctx, token)
    assert result.user is None and result.error == "invalid bearer token"


def test_another_issuer_is_not_ours() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    assert review_token(ctx, _signed(ctx, iss="https://elsewhere")).error == "invalid bearer token"


def test_a_token_signed_by_a_foreign_key_is_rejected() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    forged = KeyRing.generate("ES256").sign(claims_of(token_for(ctx)))
    assert review_token(ctx, forged).error == "[invalid bearer token, invalid signature, no keys found]"


def test_rotation_keeps_old_tokens_until_their_key_is_dropped() -> None:
    ctx = make_ctx(keys=KeyRing.generate("ES256"))
    create_sa(ctx, "sa1")
    old_kid = ctx.keys.active_kid
    old = token_for(ctx)
    new_kid = ctx.rotate_signing_key()
    new = token_for(ctx)
    assert authenticate_token(ctx, old) is not None and authenticate_token(ctx, new) is not None
    ctx.drop_signing_key(old_kid)
    assert authenticate_token(ctx, old) is None
    assert authenticate_token(ctx, new) is not None
    assert [k["kid"] for k in ctx.keys.jwks()["keys"]] == [new_kid]


def test_the_success_cache_delays_revocation_until_its_ttl() -> None:
    clock = [1000.0]
    ctx = make_ctx(auth_cache_seconds=10)
    ctx.auth_cache = AuthCache(clock=lambda: clock[0])
    create_sa(ctx, "sa1")
    token = token_for(ctx)
    assert authenticate_token(ctx, token) is not None
    ctx.store.delete(SERVICEACCOUNTS, "default", "sa1")
    assert authenticate_token(ctx, token) is not None  # cached, as a real apiserver for ~10 s
    clock[0] += 10
    assert authenticate_token(ctx, token) is None


def test_without_a_cache_revocation_is_immediate() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    token = token_for(ctx)
    assert authenticate_token(ctx, token) is not None
    ctx.store.delete(SERVICEACCOUNTS, "default", "sa1")
    assert authenticate_token(ctx, token) is None
    assert len(ctx.auth_cache) == 0
