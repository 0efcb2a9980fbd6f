"""The route table (handlers and their OpenAPI description side by side) and the application factory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from broker import __version__
from broker.callers.chain import AuthenticatorChain
from broker.contracts import IssuerPort
from broker.http import meta, tokens
from broker.http.keys import AUTHENTICATOR, ISSUER, OPENAPI_DOCUMENT, RATE_LIMITS
from broker.http.limits import CallerRateLimits
from broker.http.models import (
    ExecCredential,
    Health,
    Problem,
    RoleList,
    TokenRequestBody,
    TokenResponse,
    WhoAmI,
)
from broker.http.openapi import Operation, Reply, build_document
from broker.http.problem import error_middleware
from broker.http.request_id import request_id_middleware

_NO_STORE = {"Cache-Control": "no-store", "Location": "the issued token's resource (for revocation)"}
_KUBECONFIG_TEXT = {"type": "string", "description": "a kubeconfig (YAML) holding the token"}

ROUTES: tuple[tuple[Operation, Handler], ...] = (
    (
        Operation(
            "POST",
            "/v1/tokens",
            "createToken",
            "Issue a short-lived service-account token",
            authenticated=True,
            request_model=TokenRequestBody,
            query=(
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "description": "json (default), kubeconfig (also `Accept: application/yaml`), exec-credential",
                    "schema": {"type": "string", "enum": [f.value for f in tokens.TokenFormat]},
                },
            ),
            replies={
                201: Reply(
                    "the token, as JSON, a kubeconfig or an ExecCredential",
                    content={
                        "application/json": (TokenResponse, ExecCredential),
                        tokens.YAML_TYPE: _KUBECONFIG_TEXT,
                    },
                    headers=_NO_STORE,
                )
            },
            errors={
                403: "the policy does not let this caller have this role here (unknown roles too)",
                429: "too many requests from this caller (Retry-After says when to retry)",
                502: "the API server refused the request",
                503: "the API server or the audit store is unavailable",
            },
            tags=("tokens",),
        ),
        tokens.create_token,
    ),
    (
        Operation(
            "GET",
            "/v1/roles",
            "listRoles",
            "The roles the caller may request",
            authenticated=True,
            replies={200: Reply("usable roles", content={"application/json": RoleList})},
            tags=("meta",),
        ),
        meta.roles,
    ),
    (
        Operation(
            "GET",
            "/v1/whoami",
            "whoAmI",
            "How the broker sees the caller",
            authenticated=True,
            replies={200: Reply("the authenticated caller", content={"application/json": WhoAmI})},
            tags=("meta",),
        ),
        meta.whoami,
    ),
    (
        Operation(
            "GET",
            "/healthz",
            "healthz",
            "The process is alive",
            authenticated=False,
            replies={200: Reply("alive", content={"application/json": Health})},
            tags=("probes",),
        ),
        meta.healthz,
    ),
    (
        Operation(
            "GET",
            "/readyz",
            "readyz",
            "The broker can issue tokens (API server and audit store reachable)",
            authenticated=False,
            replies={
                200: Reply("ready", content={"application/json": Health}),
                503: Reply(
                    "not ready; `failing` names what",
                    content={"application/problem+json": Problem},
                    headers={"Retry-After": "seconds to wait before asking again"},
                ),
            },
            tags=("probes",),
        ),
        meta.readyz,
    ),
    (
        Operation(
            "GET",
            "/openapi.json",
            "openapi",
            "This description",
            authenticated=False,
            replies={200: Reply("OpenAPI 3.1 document", content={"application/json": {"type": "object"}})},
            tags=("meta",),
        ),
        meta.openapi_document,
    ),
)


def openapi_document(routes: Sequence[tuple[Operation, Handler]] = ROUTES) -> dict[str, Any]:
    return build_document([op for op, _ in routes], title="kube-token-broker", version=__version__)


def build_http_app(
    *,
    authenticator: AuthenticatorChain,
    issuer: IssuerPort,
    max_body_bytes: int,
    rate_limits: CallerRateLimits | None = None,
) -> web.Application:
    """The broker's public API. The caller adds lifecycle (cleanup_ctx) and runs it with
    `web.AppRunner(app, access_log_class=RedactingAccessLogger)` over a `server_ssl_context(...)`.

    rate_limits: per-caller limits on POST /v1/tokens (None: unlimited).
    """
    app = web.Application(
        # request_id outermost so error responses carry the id too
        middlewares=[request_id_middleware, error_middleware(authenticator.challenge)],
        client_max_size=max_body_bytes,
    )
    app[AUTHENTICATOR] = authenticator
    app[ISSUER] = issuer
    if rate_limits is not None:
        app[RATE_LIMITS] = rate_limits
    app[OPENAPI_DOCUMENT] = openapi_document()
    for op, handler in ROUTES:
        app.router.add_route(op.method, op.path, handler, name=op.operation_id)
    return app
