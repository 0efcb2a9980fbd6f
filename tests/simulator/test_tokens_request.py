"""TokenRequest semantics without HTTP: issue_token against a store populated directly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from tokens_support import (
    ISSUER,
    claims_of,
    create_node,
    create_pod,
    create_sa,
    create_secret,
    make_ctx,
    segments,
)

from kubesim.status import ApiError
from kubesim.token_request import issue_token


def request(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def test_defaults_echo_and_claims_shape() -> None:
    ctx = make_ctx()
    sa = create_sa(ctx, "sa1", "ns1")
    issued = issue_token(ctx, "ns1", "sa1", request())
    body = issued.body
    assert body["kind"] == "TokenRequest" and body["apiVersion"] == "authentication.k8s.io/v1"
    assert body["metadata"]["name"] == "sa1" and body["metadata"]["namespace"] == "ns1"
    assert body["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600, "boundObjectRef": None}
    token = body["status"]["token"]
    header, payload = segments(token)
    assert header == f'{{"alg":"RS256","kid":"{ctx.keys.active_kid}"}}'.encode()
    claims = claims_of(token)
    assert list(claims) == ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]
    assert payload.startswith(b'{"aud":["')  # aud is always an array
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:ns1:sa1"
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] == 3600
    assert uuid.UUID(claims["jti"]).version == 4
    assert claims["kubernetes.io"] == {
        "namespace": "ns1",
        "serviceaccount": {"name": "sa1", "uid": sa["metadata"]["uid"]},
    }
    # expirationTimestamp: now + seconds taken before signing, never after the token's exp
    assert _epoch(body["status"]["expirationTimestamp"]) <= claims["exp"]
    assert issued.warnings == []


def test_each_token_has_its_own_jti() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    jtis = {
        claims_of(issue_token(ctx, "default", "sa1", request()).body["status"]["token"])["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_requested_audiences_are_kept() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    body = issue_token(ctx, "default", "sa1", request(audiences=["vault", "x"], expirationSeconds=600)).body
    assert body["spec"]["audiences"] == ["vault", "x"] and body["spec"]["expirationSeconds"] == 600
    assert claims_of(body["status"]["token"])["aud"] == ["vault", "x"]


def test_configured_api_audiences_are_the_default() -> None:
    ctx = make_ctx(api_audiences=["https://kubernetes.default.svc.cluster.local", "k3s"])
    create_sa(ctx, "sa1")
    body = issue_token(ctx, "default", "sa1", request()).body
    assert body["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local", "k3s"]


def test_missing_service_account_is_404() -> None:
    ctx = make_ctx()
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "nobody", request(expirationSeconds=60))
    assert err.value.to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'serviceaccounts "nobody" not found',
        "reason": "NotFound",
        "details": {"name": "nobody", "kind": "serviceaccounts"},
        "code": 404,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (60, "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        (0, "spec.expirationSeconds: Invalid value: 0: may not specify a duration less than 10 minutes"),
        (
            2**32 + 1,
            "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds",
        ),
    ],
)
def test_out_of_range_expiration_is_422_never_clamped(seconds: int, text: str) -> None:
    ctx = make_ctx(max_token_expiration=86400)
    create_sa(ctx, "sa1")
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "sa1", request(expirationSeconds=seconds))
    status = err.value.to_status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == f'TokenRequest.authentication.k8s.io "" is invalid: {text}'
    assert (
        status["details"]["group"] == "authentication.k8s.io" and status["details"]["kind"] == "TokenRequest"
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": text.split(": ", 1)[1], "field": "spec.expirationSeconds"}
    ]


def test_boundaries_600_and_2_pow_32_are_accepted() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    assert (
        issue_token(ctx, "default", "sa1", request(expirationSeconds=600)).body["spec"]["expirationSeconds"]
        == 600
    )
    assert (
        issue_token(ctx, "default", "sa1", request(expirationSeconds=2**32)).body["spec"]["expirationSeconds"]
        == 2**32
    )


def test_max_expiration_caps_silently_with_a_warning() -> None:
    ctx = make_ctx(max_token_expiration=7200)
    create_sa(ctx, "sa1")
    issued = issue_token(ctx, "default", "sa1", request(expirationSeconds=86400))
    assert issued.body["spec"]["expirationSeconds"] == 7200
    assert issued.warnings == ["requested expiration of 86400 seconds shortened to 7200 seconds"]
    claims = claims_of(issued.body["status"]["token"])
    assert claims["exp"] - claims["iat"] == 7200
    # at or below the cap: no warning
    assert issue_token(ctx, "default", "sa1", request(expirationSeconds=7200)).warnings == []


def test_name_in_body_must_match_the_url() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "sa1", {"metadata": {"name": "other"}, "spec": {}})
    assert err.value.code == 422
    assert err.value.message == (
        'TokenRequest.authentication.k8s.io "sa1" is invalid: metadata.name: Invalid value: "other": '
        "must match the service account name if specified"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"spec": {"expirationSeconds": "600"}},
        {"spec": {"expirationSeconds": True}},
        {"spec": {"audiences": "vault"}},
        {"spec": []},
        {"spec": {"boundObjectRef": "s1"}},
    ],
)
def test_wrongly_typed_fields_are_400(body: dict[str, Any]) -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "sa1", body)
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    assert 'TokenRequest in version "v1" cannot be handled as a TokenRequest' in err.value.message


def test_secret_bound_token() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    secret = create_secret(ctx, "s1")
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "s1", "uid": secret["metadata"]["uid"]}
    body = issue_token(ctx, "default", "sa1", request(boundObjectRef=ref)).body
    assert body["spec"]["boundObjectRef"] == {
        "kind": "Secret",
        "apiVersion": "v1",
        "name": "s1",
        "uid": ref["uid"],
    }
    private = claims_of(body["status"]["token"])["kubernetes.io"]
    assert private["secret"] == {"name": "s1", "uid": secret["metadata"]["uid"]}
    assert "pod" not in private and "node" not in private


def test_bound_secret_missing_is_404_and_wrong_uid_is_409() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    with pytest.raises(ApiError) as err:
        issue_token(
            ctx,
            "default",
            "sa1",
            request(boundObjectRef={"apiVersion": "v1", "kind": "Secret", "name": "s1"}),
        )
    assert (err.value.code, err.value.message) == (404, 'secrets "s1" not found')

    create_secret(ctx, "s1")
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "s1", "uid": "not-the-uid"}
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "sa1", request(boundObjectRef=ref))
    status = err.value.to_status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on Secret "s1": the UID in the bound object reference (not-the-uid) '
        "does not match the UID in record. The object might have been deleted and then recreated"
    )
    assert status["details"] == {"name": "s1", "kind": "Secret"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},
            "cannot bind token to object of type /v1, Kind=ConfigMap",
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Secret", "name": "s"},
            "cannot bind token to object of type apps/v1, Kind=Secret",
        ),
    ],
)
def test_unsupported_bound_kinds_are_400(ref: dict[str, str], message: str) -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    with pytest.raises(ApiError) as err:
        issue_token(ctx, "default", "sa1", request(boundObjectRef=ref))
    assert (err.value.code, err.value.reason, err.value.message) == (400, "BadRequest", message)


def test_pod_bound_token_names_the_pod_and_its_node() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    node = create_node(ctx, "node-a")
    pod = create_pod(ctx, "p1", "sa1", node="node-a")
    body = issue_token(
        ctx, "default", "sa1", request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p1"})
    ).body
    private = claims_of(body["status"]["token"])["kubernetes.io"]
    assert private["pod"] == {"name": "p1", "uid": pod["metadata"]["uid"]}
    assert private["node"] == {"name": "node-a", "uid": node["metadata"]["uid"]}
    assert list(private) == ["namespace", "node", "pod", "serviceaccount"]


def test_pod_on_an_unknown_node_still_names_the_node() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    create_pod(ctx, "p1", "sa1", node="ghost")
    body = issue_token(
        ctx, "default", "sa1", request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p1"})
    ).body
    assert claims_of(body["status"]["token"])["kubernetes.io"]["node"] == {"name": "ghost"}


def test_pod_running_under_another_service_account_is_400() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    create_pod(ctx, "p1", "other")
    with pytest.raises(ApiError) as err:
        issue_token(
            ctx, "default", "sa1", request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p1"})
        )
    assert err.value.code == 400
    assert (
        err.value.message
        == 'cannot bind token for serviceaccount "sa1" to pod running with different serviceaccount name.'
    )


def test_node_bound_token() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    node = create_node(ctx, "node-a")
    body = issue_token(
        ctx, "default", "sa1", request(boundObjectRef={"apiVersion": "v1", "kind": "Node", "name": "node-a"})
    ).body
    assert claims_of(body["status"]["token"])["kubernetes.io"]["node"] == {
        "name": "node-a",
        "uid": node["metadata"]["uid"],
    }
    with pytest.raises(ApiError) as err:
        issue_token(
            ctx,
            "default",
            "sa1",
            request(boundObjectRef={"apiVersion": "v1", "kind": "Node", "name": "nope"}),
        )
    assert (err.value.code, err.value.message) == (404, 'nodes "nope" not found')


def test_projected_volume_tokens_are_extended_with_warnafter() -> None:
    ctx = make_ctx()
    create_sa(ctx, "sa1")
    create_pod(ctx, "p1", "sa1")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p1"}
    body = issue_token(ctx, "default", "sa1", request(expirationSeconds=3607, boundObjectRef=ref)).body
    claims = claims_of(body["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    # the API still reports the asked lifetime
    assert body["spec"]["expirationSeconds"] == 3607
    assert _epoch(body["status"]["expirationTimestamp"]) == claims["iat"] + 3607
