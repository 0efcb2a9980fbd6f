"""POST /v1/tokens: authenticate, validate, hand over to the issuer, render in the asked format."""

from __future__ import annotations

import json
from enum import StrEnum
from types import MappingProxyType

from aiohttp import web

from broker import render
from broker.domain.errors import bad_request
from broker.http.auth import authenticate
from broker.http.body import parse_body
from broker.http.keys import ISSUANCE
from broker.http.models import ServiceAccountRef, TokenRequestBody, TokenResponse
from broker.http.request_id import request_id_var
from broker.usecases.ports import IssuedToken, IssueRequest

YAML_TYPE = "application/yaml"
_YAML_ACCEPT = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
_MAX_USER_AGENT = 256
# RFC 6749 §5.1: responses carrying a token must not be cached
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenFormat(StrEnum):
    JSON = "json"
    KUBECONFIG = "kubeconfig"
    EXEC_CREDENTIAL = "exec-credential"


def wanted_format(request: web.Request) -> TokenFormat:
    """?format= wins; otherwise `Accept: application/yaml` asks for a kubeconfig; JSON by default."""
    asked = request.query.get("format")
    if asked is not None:
        try:
            return TokenFormat(asked)
        except ValueError:
            choices = ", ".join(f.value for f in TokenFormat)
            raise bad_request(f"unknown format; use one of {choices}") from None
    accept = request.headers.get("Accept", "")
    media_types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    if media_types & _YAML_ACCEPT:
        return TokenFormat.KUBECONFIG
    return TokenFormat.JSON


def token_response(issued: IssuedToken) -> TokenResponse:
    return TokenResponse(
        token=issued.token,
        token_id=issued.token_id,
        jti=issued.jti,
        expires_at=issued.expires_at,
        issued_at=issued.issued_at,
        service_account=ServiceAccountRef(namespace=issued.namespace, name=issued.service_account),
        audiences=list(issued.audiences),
        role=issued.role,
        cluster=issued.cluster,
        warnings=list(issued.warnings),
    )


def _render(issued: IssuedToken, fmt: TokenFormat) -> web.Response:
    headers = {**_NO_STORE, "Location": f"/v1/tokens/{issued.token_id}"}
    if fmt is TokenFormat.KUBECONFIG:
        text = render.kubeconfig(
            cluster_name=issued.cluster,
            server_url=issued.server_url,
            ca_pem=issued.ca_pem,
            user_name=issued.role,
            token=issued.token,
            namespace=issued.namespace,
        )
        return web.Response(status=201, text=text, content_type=YAML_TYPE, headers=headers)
    if fmt is TokenFormat.EXEC_CREDENTIAL:
        body = json.dumps(render.exec_credential(issued.token, issued.expires_at))
    else:
        body = token_response(issued).model_dump_json()
    return web.Response(status=201, text=body, content_type="application/json", headers=headers)


async def create_token(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    # decided before issuing: a bad format must not cost a token
    fmt = wanted_format(request)
    body = await parse_body(request, TokenRequestBody)
    issue_request = IssueRequest(
        role=body.role,
        namespace=body.namespace,
        ttl_seconds=body.ttl_seconds,
        audiences=tuple(body.audiences) if body.audiences is not None else None,
        context=MappingProxyType(dict(body.context or {})),
        source_address=request.remote or "",
        user_agent=request.headers.get("User-Agent", "")[:_MAX_USER_AGENT],
        request_id=request_id_var.get(),
    )
    # the issuance's rate limit (the bucket is the caller's) comes before any call to the API server
    issued = await request.app[ISSUANCE].issue(caller, issue_request)
    return _render(issued, fmt)
