"""Service-account issuer discovery (pkg/serviceaccount/openidmetadata.go, pkg/routes/openidmetadata.go):
GET /.well-known/openid-configuration and GET /openid/v1/jwks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .context import SimContext
from .negotiation import negotiate
from .status import ApiError

CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
# staticPublicKeysGetter.GetCacheAgeMaxSeconds: served as Cache-Control max-age
MAX_AGE_SECONDS = 3600


def discovery_document(ctx: SimContext) -> dict[str, Any]:
    # field order of openIDMetadata; the algorithms are the sorted set of the published keys' algorithms
    return {
        "issuer": ctx.issuer,
        "jwks_uri": ctx.jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ctx.keys.algorithms(),
    }


def _issuer_is_discoverable(issuer: str) -> bool:
    # NewOpenIDMetadataProvider refuses a non-https issuer, a query or a fragment; the routes are then absent
    parts = urlsplit(issuer)
    return parts.scheme == "https" and not parts.query and not parts.fragment


def _respond(document: dict[str, Any], content_type: str) -> web.Response:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return web.Response(
        body=body,
        content_type=content_type,
        headers={"Cache-Control": f"public, max-age={MAX_AGE_SECONDS}"},
    )


def routes(ctx: SimContext) -> list[web.RouteDef]:
    def ensure_served() -> None:
        if not _issuer_is_discoverable(ctx.issuer):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    async def openid_configuration(request: web.Request) -> web.Response:
        ensure_served()
        negotiate(request.headers.get("Accept", ""), ("application/json",))
        return _respond(discovery_document(ctx), "application/json")

    async def jwks(request: web.Request) -> web.Response:
        ensure_served()
        # only the JWK Set type: a client asking for application/json alone gets 406 (routes/openidmetadata.go)
        negotiate(request.headers.get("Accept", ""), ("application/jwk-set+json",))
        return _respond(ctx.keys.jwks(), "application/jwk-set+json")

    return [web.get(CONFIG_PATH, openid_configuration), web.get(JWKS_PATH, jwks)]
