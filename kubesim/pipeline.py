"""The request pipeline, as kube-apiserver's handler chain orders its filters:
errors → faults → authentication → RequestInfo → authorization → handler.

Every failure leaves as a `Status` body with `application/json`; an unexpected exception is logged and
answered 500 InternalError (never a traceback).
"""

from __future__ import annotations

import collections
import json
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from . import authn, faults, impersonation, protobuf, request_info, resources, status
from .context import SimContext, UserInfo
from .rbac import Attributes, decide
from .status import ApiError

log = logging.getLogger("kubesim")


def put(request: web.Request, key: str, value: Any) -> None:
    """request[key] = value without aiohttp's NotAppKeyWarning: the handlers of this package share
    request["user"] and request["request_info"] by plain string keys (their documented contract)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request[key] = value


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CTX_KEY = web.AppKey("kubesim.ctx", SimContext)
FAULTS_KEY = web.AppKey("kubesim.faults", faults.Faults)


@dataclass(frozen=True)
class AuditEvent:
    """One handled request, like an apiserver audit event at level Metadata (no bodies, no credentials)."""

    timestamp: float
    verb: str
    method: str
    path: str
    query: str
    user: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]]
    code: int


@dataclass
class AuditLog:
    events: collections.deque[AuditEvent] = field(default_factory=lambda: collections.deque(maxlen=5000))

    def record(self, request: web.Request, code: int) -> None:
        user: UserInfo | None = request.get("user")
        info: request_info.RequestInfo | None = request.get("request_info")
        self.events.append(
            AuditEvent(
                timestamp=time.time(),
                verb=info.verb if info else request.method.lower(),
                method=request.method,
                path=request.path,
                query=request.query_string,
                user=user.username if user else "",
                groups=tuple(user.groups) if user else (),
                extra=dict(user.extra) if user else {},
                code=code,
            )
        )


AUDIT_KEY = web.AppKey("kubesim.audit", AuditLog)


def _http_exception_status(exc: web.HTTPException) -> ApiError:
    if exc.status == 413:
        return ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    if exc.status == 405:
        return status.method_not_allowed()
    if exc.status == 404:
        return resources.not_found_path()
    return ApiError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    audit = request.app[AUDIT_KEY]
    try:
        response = await handler(request)
    except faults.ConnectionReset:
        audit.record(request, 0)
        # the transport is gone; aiohttp writes nothing to a closed connection
        return web.Response(status=499)
    except ApiError as err:
        audit.record(request, err.code)
        return resources.error_response(err)
    except web.HTTPException as exc:
        converted = _http_exception_status(exc)
        audit.record(request, converted.code)
        return resources.error_response(converted)
    except Exception as exc:
        log.exception("kubesim: unexpected error handling %s %s", request.method, request.path)
        audit.record(request, 500)
        return resources.error_response(status.internal_error(type(exc).__name__))
    audit.record(request, response.status)
    return response


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    answer = await faults.apply(request.app[FAULTS_KEY], request)
    if answer is not None:
        return answer
    return await handler(request)


def _peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX_KEY]
    try:
        put(
            request,
            "user",
            authn.authenticate(
                ctx, _peer_certificate(request), request.headers.get("Authorization"), request.path
            ),
        )
    except authn.AuthenticationFailed:
        raise status.unauthorized() from None
    put(request, "user", impersonation.impersonate(ctx, request["user"], request.headers))
    return await handler(request)


@web.middleware
async def request_info_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    put(request, "request_info", request_info.parse(request.method, request.path, request.query))
    return await handler(request)


def attributes_of(user: UserInfo, info: request_info.RequestInfo) -> Attributes:
    return Attributes(
        user=user,
        verb=info.verb,
        is_resource_request=info.is_resource_request,
        path=info.path,
        namespace=info.namespace,
        api_group=info.api_group,
        resource=info.resource,
        subresource=info.subresource,
        name=info.name,
    )


def forbidden_for(user: UserInfo, info: request_info.RequestInfo) -> ApiError:
    if not info.is_resource_request:
        # apiserver/pkg/endpoints/handlers/responsewriters.forbiddenMessage for non-resource requests
        return ApiError(
            403, "Forbidden", f'forbidden: User "{user.username}" cannot {info.verb} path "{info.path}"', {}
        )
    return status.forbidden(
        user.username,
        info.verb,
        info.qualified_resource,
        info.api_group,
        info.namespace or None,
        info.name or None,
    )


@web.middleware
async def authorization_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX_KEY]
    user: UserInfo = request["user"]
    info: request_info.RequestInfo = request["request_info"]
    if not decide(ctx, attributes_of(user, info)).allowed:
        raise forbidden_for(user, info)
    return await handler(request)


_TRANSCODED = (protobuf.CONTENT_TYPE, "application/yaml", "application/x-yaml", "text/yaml")


@web.middleware
async def transcode_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hand protobuf and YAML request bodies to every handler as JSON (the apiserver's serializers accept all
    three; handlers here only read JSON). Done after authorization, as the real server decodes in the handler."""
    if request.content_type not in _TRANSCODED or not request.body_exists:
        return await handler(request)
    headers = CIMultiDict(request.headers)
    headers["Content-Type"] = "application/json"
    json_request = request.clone(headers=headers)
    obj = resources.decode_json_or_yaml(await json_request.read(), request.content_type)
    # aiohttp keeps the body read so far here; replacing it is how the decoded form reaches the handler
    json_request._read_bytes = json.dumps(obj).encode()
    return await handler(json_request)


MIDDLEWARES: list[Any] = [
    errors_middleware,
    faults_middleware,
    authentication_middleware,
    request_info_middleware,
    authorization_middleware,
    transcode_middleware,
]
