"""TokenReview / SelfSubjectReview bodies and the issuer discovery document, without HTTP."""

from __future__ import annotations

import pytest
from tokens_support import ISSUER, claims_of, create_sa, make_ctx

from kubesim.authentication_v1 import self_subject_review, token_review
from kubesim.context import UserInfo
from kubesim.kinds import SERVICEACCOUNTS
from kubesim.oidc import discovery_document
from kubesim.status import ApiError
from kubesim.token_request import issue_token
from kubesim.tokens import KeyRing


def test_a_successful_token_review() -> None:
    ctx = make_ctx()
    sa = create_sa(ctx, "jenkins")
    token = issue_token(ctx, "default", "jenkins", {"spec": {}}).body["status"]["token"]
    review = token_review(
        ctx, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    )
    assert review == {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": token},
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:default:jenkins",
                "uid": sa["metadata"]["uid"],
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:default",
                    "system:authenticated",
                ],
                "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims_of(token)['jti']}"]},
            },
            "audiences": [ISSUER],
        },
    }


def test_a_review_for_the_token_audience() -> None:
    ctx = make_ctx()
    create_sa(ctx, "jenkins")
    token = issue_token(ctx, "default", "jenkins", {"spec": {"audiences": ["vault"]}}).body["status"]["token"]
    review = token_review(ctx, {"spec": {"token": token, "audiences": ["vault", "other"]}})
    assert review["spec"]["audiences"] == ["vault", "other"]
    assert review["status"]["authenticated"] is True and review["status"]["audiences"] == ["vault"]


def test_a_failed_review_has_an_empty_user_and_an_error() -> None:
    ctx = make_ctx()
    create_sa(ctx, "jenkins")
    token = issue_token(ctx, "default", "jenkins", {"spec": {}}).body["status"]["token"]
    ctx.store.delete(SERVICEACCOUNTS, "default", "jenkins")
    review = token_review(ctx, {"spec": {"token": token}})
    # `authenticated` is omitempty in the Go type: a failed review does not carry it at all
    assert review["status"] == {
        "user": {},
        "error": '[invalid bearer token, serviceaccounts "jenkins" not found]',
    }


@pytest.mark.parametrize("body", [{"spec": {}}, {"spec": {"token": ""}}, {}])
def test_an_empty_token_is_400(body: dict[str, object]) -> None:
    with pytest.raises(ApiError) as err:
        token_review(make_ctx(), body)
    assert (err.value.code, err.value.message) == (400, "token is required for TokenReview in authentication")


def test_self_subject_review_reports_the_requester() -> None:
    user = UserInfo("system:serviceaccount:default:jenkins", "u-1", ["system:serviceaccounts"], {"k": ["v"]})
    review = self_subject_review(user)
    assert review["kind"] == "SelfSubjectReview" and review["apiVersion"] == "authentication.k8s.io/v1"
    assert review["metadata"]["creationTimestamp"].endswith("Z")
    assert review["status"] == {
        "userInfo": {
            "username": "system:serviceaccount:default:jenkins",
            "uid": "u-1",
            "groups": ["system:serviceaccounts"],
            "extra": {"k": ["v"]},
        }
    }
    # a user without uid and extra: both omitted, not empty
    assert self_subject_review(UserInfo("admin", groups=["system:masters"]))["status"] == {
        "userInfo": {"username": "admin", "groups": ["system:masters"]}
    }


def test_discovery_document() -> None:
    ctx = make_ctx(keys=KeyRing.generate("ES256"))
    assert discovery_document(ctx) == {
        "issuer": ISSUER,
        "jwks_uri": "https://127.0.0.1:6443/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }
    ctx.rotate_signing_key("RS256")
    assert discovery_document(ctx)["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_a_configured_jwks_uri_wins() -> None:
    ctx = make_ctx(jwks_uri="https://issuer.example/keys")
    assert discovery_document(ctx)["jwks_uri"] == "https://issuer.example/keys"
