"""The legacy token controller and legacy-token authentication, against a store populated directly."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime

from tokens_support import create_sa, create_token_secret, make_ctx, secret_value, segments

from kubesim import token_controller
from kubesim.context import SimContext
from kubesim.kinds import SECRETS, SERVICEACCOUNTS
from kubesim.state import Obj
from kubesim.token_auth import authenticate_token, review_token


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def filled_secret(ctx: SimContext, name: str = "jenkins-token", sa: str = "jenkins") -> tuple[Obj, str]:
    """Without a running loop the controller fills a token Secret at once."""
    create_token_secret(ctx, name, sa)
    secret = ctx.store.get(SECRETS, "default", name)
    return secret, secret_value(secret, "token")


def test_the_controller_fills_token_ca_namespace_and_uid_annotation() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    sa = create_sa(ctx, "jenkins")
    secret, token = filled_secret(ctx)
    assert secret_value(secret, "ca.crt") == ctx.ca.cert_pem.decode()
    assert secret_value(secret, "namespace") == "default"
    assert secret["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "jenkins",
        "kubernetes.io/service-account.uid": sa["metadata"]["uid"],
    }
    header, payload = segments(token)
    assert header == f'{{"alg":"RS256","kid":"{ctx.keys.active_kid}"}}'.encode()
    assert (
        payload
        == (
            '{"iss":"kubernetes/serviceaccount","kubernetes.io/serviceaccount/namespace":"default",'
            '"kubernetes.io/serviceaccount/secret.name":"jenkins-token",'
            '"kubernetes.io/serviceaccount/service-account.name":"jenkins",'
            f'"kubernetes.io/serviceaccount/service-account.uid":"{sa["metadata"]["uid"]}",'
            '"sub":"system:serviceaccount:default:jenkins"}'
        ).encode()
    )


def test_a_legacy_token_authenticates_and_marks_its_secret_last_used_once() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    sa = create_sa(ctx, "jenkins")
    _secret, token = filled_secret(ctx)
    user = authenticate_token(ctx, token)
    assert user is not None
    assert user.username == "system:serviceaccount:default:jenkins"
    assert user.uid == sa["metadata"]["uid"]
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    assert user.extra == {}  # no jti, no credential id
    secret = ctx.store.get(SECRETS, "default", "jenkins-token")
    assert secret["metadata"]["labels"] == {"kubernetes.io/legacy-token-last-used": _today()}
    version = secret["metadata"]["resourceVersion"]
    assert authenticate_token(ctx, token) is not None
    assert ctx.store.get(SECRETS, "default", "jenkins-token")["metadata"]["resourceVersion"] == version


def test_legacy_tokens_only_serve_the_api_audiences() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    _secret, token = filled_secret(ctx)
    assert review_token(ctx, token).audiences == ctx.api_audiences
    assert review_token(ctx, token, ["vault"]).user is None


def test_invalid_since_label_rejects_the_token() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    secret, token = filled_secret(ctx)
    secret["metadata"]["labels"] = {"kubernetes.io/legacy-token-invalid-since": "2023-10-25"}
    ctx.store.update(SECRETS, "default", secret)
    result = review_token(ctx, token)
    assert result.user is None
    assert result.error == (
        "[invalid bearer token, the token in secret default/jenkins-token for service account default/jenkins "
        "has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, "
        "or remove the 'kubernetes.io/legacy-token-invalid-since' label from the secret to temporarily allow use "
        "of this token]"
    )
    # the attempt is still recorded as a use
    labels = ctx.store.get(SECRETS, "default", "jenkins-token")["metadata"]["labels"]
    assert labels["kubernetes.io/legacy-token-last-used"] == _today()


def test_a_changed_secret_or_account_invalidates_the_token() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    secret, token = filled_secret(ctx)
    secret["data"]["token"] = base64.b64encode(b"something-else").decode()
    ctx.store.update(SECRETS, "default", secret)
    assert review_token(ctx, token).error == "[invalid bearer token, Token does not match server's copy]"


def test_deleting_the_service_account_deletes_its_token_secrets() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    create_sa(ctx, "other")
    _secret, token = filled_secret(ctx)
    filled_secret(ctx, "other-token", "other")
    ctx.store.delete(SERVICEACCOUNTS, "default", "jenkins")
    assert ctx.store.try_get(SECRETS, "default", "jenkins-token") is None
    assert ctx.store.try_get(SECRETS, "default", "other-token") is not None
    assert review_token(ctx, token).error == "[invalid bearer token, Token has been invalidated]"


def test_a_token_secret_without_its_service_account_is_deleted() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_token_secret(ctx, "orphan-token", "nobody")
    assert ctx.store.try_get(SECRETS, "default", "orphan-token") is None


def test_a_secret_that_has_a_token_is_not_refilled() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    secret, token = filled_secret(ctx)
    secret["metadata"]["labels"] = {"touched": "yes"}
    ctx.store.update(SECRETS, "default", secret)
    assert secret_value(ctx.store.get(SECRETS, "default", "jenkins-token"), "token") == token


def test_other_secret_types_are_left_alone() -> None:
    ctx = make_ctx()
    token_controller.install(ctx)
    ctx.store.create(SECRETS, "default", {"metadata": {"name": "plain"}, "type": "Opaque", "data": {}})
    assert ctx.store.get(SECRETS, "default", "plain")["data"] == {}


async def _wait_for_token(ctx: SimContext, name: str, timeout: float = 5.0) -> Obj:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = ctx.store.try_get(SECRETS, "default", name)
        if secret is not None and (secret.get("data") or {}).get("token"):
            return secret
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} got no token within {timeout}s")


async def test_inside_an_event_loop_the_token_arrives_asynchronously() -> None:
    ctx = make_ctx(legacy_token_delay=0.05)
    controller = token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    create_token_secret(ctx, "jenkins-token", "jenkins")
    # right after the create the Secret has no token yet: clients must poll or watch
    assert not (ctx.store.get(SECRETS, "default", "jenkins-token").get("data") or {}).get("token")
    secret = await _wait_for_token(ctx, "jenkins-token")
    assert authenticate_token(ctx, secret_value(secret, "token")) is not None
    controller.stop()


async def test_stop_cancels_pending_fills() -> None:
    ctx = make_ctx(legacy_token_delay=0.05)
    controller = token_controller.install(ctx)
    create_sa(ctx, "jenkins")
    create_token_secret(ctx, "jenkins-token", "jenkins")
    controller.stop()
    await asyncio.sleep(0.15)
    assert not (ctx.store.get(SECRETS, "default", "jenkins-token").get("data") or {}).get("token")
