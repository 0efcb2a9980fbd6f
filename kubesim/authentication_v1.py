"""authentication.k8s.io/v1: TokenReview and SelfSubjectReview (pkg/registry/authentication/*/storage.go).

Authorization (create tokenreviews / selfsubjectreviews at cluster scope) happens in the server's
middleware before these handlers; they only do what the registry does.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from . import status
from .context import SimContext, UserInfo
from .token_auth import review_token
from .wire import decode_object, json_response, rfc3339, type_error

API_VERSION = "authentication.k8s.io/v1"
TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SELF_SUBJECT_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def routes(ctx: SimContext) -> list[web.RouteDef]:
    async def create_token_review(request: web.Request) -> web.Response:
        body = decode_object(await request.read(), "TokenReview")
        return json_response(token_review(ctx, body), status=201)

    async def create_self_subject_review(request: web.Request) -> web.Response:
        decode_object(await request.read(), "SelfSubjectReview")
        user = request.get("user")
        if not isinstance(user, UserInfo):
            raise status.bad_request("no user present on request")
        return json_response(self_subject_review(user), status=201)

    return [
        web.post(TOKEN_REVIEWS_PATH, create_token_review),
        web.post(SELF_SUBJECT_REVIEWS_PATH, create_self_subject_review),
    ]


def user_info_json(user: UserInfo) -> dict[str, Any]:
    # authentication/v1 UserInfo: every field omitempty, extra as a (sorted) map
    out: dict[str, Any] = {}
    if user.username:
        out["username"] = user.username
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in sorted(user.extra.items())}
    return out


def _string_list(value: Any, go_field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise type_error("TokenReview", go_field, value, "string")
    return list(value)


def token_review(ctx: SimContext, body: dict[str, Any]) -> dict[str, Any]:
    """The answered TokenReview: status.user/audiences on success, status.user {} and status.error otherwise."""
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise type_error("TokenReview", "TokenReview.spec", spec, "v1.TokenReviewSpec")
    token = spec.get("token") or ""
    if not isinstance(token, str):
        raise type_error("TokenReview", "TokenReviewSpec.spec.token", token, "string")
    audiences = _string_list(spec.get("audiences"), "TokenReviewSpec.spec.audiences")
    if not token:
        raise status.bad_request("token is required for TokenReview in authentication")

    result = review_token(ctx, token, audiences or None)
    review_status: dict[str, Any] = {}
    if result.user is not None:
        review_status["authenticated"] = True  # omitempty: a failed review carries no `authenticated`
    review_status["user"] = user_info_json(result.user) if result.user is not None else {}
    if result.user is not None and result.audiences:
        review_status["audiences"] = result.audiences
    if result.error:
        review_status["error"] = result.error

    echoed_spec: dict[str, Any] = {"token": token}
    if audiences:
        echoed_spec["audiences"] = audiences
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {
        "kind": "TokenReview",
        "apiVersion": API_VERSION,
        "metadata": {
            **{k: v for k, v in (meta or {}).items() if k in ("name", "labels", "annotations")},
            "creationTimestamp": None,
        },
        "spec": echoed_spec,
        "status": review_status,
    }


def self_subject_review(user: UserInfo) -> dict[str, Any]:
    """Who the requester is (`kubectl auth whoami`)."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": rfc3339(time.time())},
        "status": {"userInfo": user_info_json(user)},
    }
