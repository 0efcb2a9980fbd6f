"""X-Request-ID in and out, and on a contextvar so every log line of a request can carry it."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Handler

REQUEST_ID_HEADER = "X-Request-ID"
# where handlers, the error middleware and the access logger find the id
REQUEST_ID_KEY = web.RequestKey("request_id", str)

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# An incoming id is echoed into logs and headers: accept only short, plain tokens so a caller cannot inject
# log lines or header content through it.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def incoming_or_new(value: str | None) -> str:
    if value is not None and _ACCEPTABLE.fullmatch(value):
        return value
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: every response, error responses included, carries the id."""
    request_id = incoming_or_new(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    finally:
        request_id_var.reset(token)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record (use `%(request_id)s` in a log format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True
