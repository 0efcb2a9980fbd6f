"""The route table (handlers and their OpenAPI description side by side) and the application factory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from broker import __version__
from broker.callers.chain import AuthenticatorChain
from broker.http import correlations, meta, operators, tokens
from broker.http.keys import (
    AUTHENTICATOR,
    CORRELATION,
    INTROSPECTION,
    ISSUANCE,
    OPENAPI_DOCUMENT,
    RECORDS,
    REVOCATION,
)
from broker.http.models import (
    AuditEventList,
    AuditEventView,
    AuditListQuery,
    ExecCredential,
    Health,
    IntrospectionRequest,
    IntrospectionResponse,
    IssuanceList,
    IssuanceView,
    Problem,
    RoleList,
    TokenListQuery,
    TokenRequestBody,
    TokenResponse,
    WhoAmI,
)
from broker.http.observe import metrics_middleware
from broker.http.openapi import Operation, Reply, build_document
from broker.http.problem import error_middleware
from broker.http.request_id import request_id_middleware
from broker.usecases.ports import (
    CorrelationPort,
    IntrospectionPort,
    IssuancePort,
    RecordsPort,
    RevocationPort,
)

_NO_STORE = {"Cache-Control": "no-store", "Location": "the issued token's resource (for revocation)"}
_KUBECONFIG_TEXT = {"type": "string", "description": "a kubeconfig (YAML) holding the token"}
_LISTING_ERRORS = {
    400: "the cursor is not one this listing handed out",
    422: "a query parameter is unknown, repeated or invalid; `errors` names it",
    503: "the audit store is unavailable or not configured",
}
_VISIBILITY = (
    "Callers in an operator group see every record; any other caller sees only the records it made "
    "(same user and authentication method)."
)


def _listing(
    view: type[IssuanceView] | type[AuditEventView], page: type[IssuanceList] | type[AuditEventList]
) -> Reply:
    return Reply(
        "a page (json), or every matching record as JSON lines (format=jsonl)",
        content={
            "application/json": page,
            operators.NDJSON: {
                "type": "string",
                "description": f"one {view.__name__} per line",
                "contentMediaType": operators.NDJSON,
            },
        },
        headers={"Cache-Control": "no-store"},
    )


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
            "/v1/tokens",
            "listTokens",
            "Issued tokens (never the tokens themselves), newest first. " + _VISIBILITY,
            authenticated=True,
            query=operators.query_parameters(TokenListQuery),
            replies={200: _listing(IssuanceView, IssuanceList)},
            errors=_LISTING_ERRORS,
            tags=("audit",),
        ),
        operators.list_tokens,
    ),
    (
        Operation(
            "DELETE",
            "/v1/tokens/{token_id}",
            "revokeToken",
            "Revoke a token: delete the Secret it is bound to (the API server then rejects it) and record it. "
            'Optional JSON body {"reason": "..."}. Idempotent: an already revoked or expired token is a 204 too.',
            authenticated=True,
            query=(
                {
                    "name": "token_id",
                    "in": "path",
                    "required": True,
                    "description": "the token_id the issuance returned",
                    "schema": {"type": "string", "maxLength": 256},
                },
            ),
            replies={204: Reply("revoked (or already dead)")},
            errors={
                400: "the body is not a JSON object",
                404: "no such token, or not one this caller may revoke",
                409: "the token cannot be revoked (its role binds no Secret), or was never issued",
                415: "the body is not application/json",
                422: "the body fails validation",
                502: "the API server refused to delete the Secret (the token stays valid)",
                503: "the API server or the audit store is unavailable (the token stays valid)",
            },
            tags=("audit",),
        ),
        operators.revoke_token,
    ),
    (
        Operation(
            "GET",
            "/v1/audit",
            "listAuditEvents",
            "The audit log: every decision (issued, denied, failed, aborted, revoked, expired), newest first. "
            + _VISIBILITY,
            authenticated=True,
            query=operators.query_parameters(AuditListQuery),
            replies={200: _listing(AuditEventView, AuditEventList)},
            errors=_LISTING_ERRORS,
            tags=("audit",),
        ),
        operators.list_audit,
    ),
    (
        Operation(
            "POST",
            "/v1/introspect",
            "introspectToken",
            "RFC 7662-like: is this token one the broker issued, verified by its cluster's keys, and live? "
            'Anything else is {"active": false}.',
            authenticated=True,
            request_model=IntrospectionRequest,
            replies={
                200: Reply(
                    "the token's state",
                    content={"application/json": IntrospectionResponse},
                    headers={"Cache-Control": "no-store"},
                )
            },
            errors={503: "the audit store, or the cluster's signing keys, are unavailable"},
            tags=("audit",),
        ),
        operators.introspect,
    ),
    correlations.ROUTE,
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
    issuance: IssuancePort,
    max_body_bytes: int,
    records: RecordsPort | None = None,
    revocation: RevocationPort | None = None,
    introspection: IntrospectionPort | None = None,
    correlation: CorrelationPort | None = None,
) -> web.Application:
    """The broker's public API. The caller adds lifecycle (cleanup_ctx) and runs it with
    `web.AppRunner(app, access_log_class=RedactingAccessLogger)` over a `server_ssl_context(...)`.

    records, revocation, introspection: the audit trail's use cases (None: those endpoints answer 503).
    correlation: POST /v1/audit/correlations (None: it answers 503).
    """
    app = web.Application(
        # request_id outermost so error responses carry the id too
        # metrics outermost of all: it sees the final status, problem+json errors included
        middlewares=[metrics_middleware, request_id_middleware, error_middleware(authenticator.challenge)],
        client_max_size=max_body_bytes,
    )
    app[AUTHENTICATOR] = authenticator
    app[ISSUANCE] = issuance
    if records is not None:
        app[RECORDS] = records
    if revocation is not None:
        app[REVOCATION] = revocation
    if introspection is not None:
        app[INTROSPECTION] = introspection
    if correlation is not None:
        app[CORRELATION] = correlation
    app[OPENAPI_DOCUMENT] = openapi_document()
    for op, handler in ROUTES:
        app.router.add_route(op.method, op.path, handler, name=op.operation_id)
    return app
