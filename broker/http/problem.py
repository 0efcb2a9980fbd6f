"""application/problem+json (RFC 9457) for every error the HTTP edge returns, whatever raised it."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from broker.domain.errors import BrokerError
from broker.http.request_id import REQUEST_ID_KEY

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:kube-token-broker:problem:"
# statuses a client is told when to come back (RFC 9110 §10.2.3)
_RETRY_STATUSES = frozenset({429, 503})
_DEFAULT_RETRY_AFTER = 1.0
_MAX_DETAIL = 2000
# problem types for what aiohttp itself raises; any other status is about:blank (RFC 9457 §4.2.1)
_HTTP_EXCEPTION_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "unsupported-media-type",
}


def problem_type(slug: str) -> str:
    if not slug or slug == "about:blank" or ":" in slug:
        return slug or "about:blank"
    return _TYPE_PREFIX + slug


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_slug: str = "about:blank",
    request_id: str | None = None,
    retry_after: float | None = None,
    www_authenticate: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 1] + "…"
    body: dict[str, Any] = {
        "type": problem_type(type_slug),
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    out_headers: dict[str, str] = dict(headers or {})
    if status in _RETRY_STATUSES:
        seconds = retry_after if retry_after is not None else _DEFAULT_RETRY_AFTER
        out_headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    if status == 401 and www_authenticate:
        out_headers["WWW-Authenticate"] = www_authenticate
    out_headers["Cache-Control"] = "no-store"
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=out_headers,
    )


class ProblemError(BrokerError):
    """A BrokerError that carries extension members for the problem document (e.g. field errors)."""

    def __init__(self, base: BrokerError, extra: Mapping[str, Any]) -> None:
        super().__init__(base.kind, base.detail, reason=base.reason, retry_after=base.retry_after)
        self.extra: Mapping[str, Any] = dict(extra)


def from_broker_error(err: BrokerError, *, request_id: str | None, www_authenticate: str) -> web.Response:
    extra = err.extra if isinstance(err, ProblemError) else None
    return problem_response(
        err.status,
        err.detail,
        title=err.title,
        type_slug=err.type_slug,
        request_id=request_id,
        retry_after=err.retry_after,
        www_authenticate=www_authenticate,
        extra=extra,
    )


def _from_http_exception(
    exc: web.HTTPException, request: web.Request, request_id: str | None, www_authenticate: str
) -> web.Response:
    status = exc.status
    phrase = _phrase(status)
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        headers["Allow"] = ", ".join(allowed)
        detail = f"method {request.method} is not allowed here; allowed: {', '.join(allowed)}"
    elif status == 404:
        detail = "no such resource"
    elif exc.text and exc.text != f"{status}: {exc.reason}":
        detail = exc.text
    else:
        detail = phrase
    retry_after: float | None = None
    if "Retry-After" in exc.headers:
        try:
            retry_after = float(exc.headers["Retry-After"])
        except ValueError:
            retry_after = None
    return problem_response(
        status,
        detail,
        title=phrase,
        type_slug=_HTTP_EXCEPTION_SLUGS.get(status, "about:blank"),
        request_id=request_id,
        retry_after=retry_after,
        www_authenticate=www_authenticate,
        headers=headers,
    )


def error_middleware(www_authenticate: str) -> Middleware:
    """Maps everything a handler can raise to problem+json; unexpected errors become an opaque 500.

    www_authenticate: the challenge every 401 carries (RFC 9110 §15.5.2 requires one).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id: str | None = request.get(REQUEST_ID_KEY)
        try:
            return await handler(request)
        except BrokerError as err:
            level = logging.WARNING if err.status >= 500 else logging.INFO
            log.log(
                level,
                "request %s %s refused: %s %s (%s)",
                request_id,
                request.method,
                err.status,
                err.title,
                err.reason or err.detail,
            )
            return from_broker_error(err, request_id=request_id, www_authenticate=www_authenticate)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _from_http_exception(exc, request, request_id, www_authenticate)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            # The traceback stays in our log, tied to the request id; the caller learns only the id.
            log.exception("request %s %s %s failed unexpectedly", request_id, request.method, request.path)
            return problem_response(
                500,
                "internal error; quote the request id when reporting it",
                type_slug="internal-error",
                request_id=request_id,
            )

    return middleware
