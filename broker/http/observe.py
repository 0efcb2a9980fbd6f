"""Per-request metrics: route template (never the raw path), method, status class, duration."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from broker import metrics


def _route(request: web.Request) -> str | None:
    # the template ("/v1/tokens/{token_id}"), so caller-chosen path segments never become label values
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_request(_route(request), request.method, status, time.perf_counter() - started)
