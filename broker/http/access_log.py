"""An access log that cannot leak credentials: no headers, no query string, no body."""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from broker.http.keys import CALLER_KEY
from broker.http.request_id import REQUEST_ID_KEY

_MAX_PATH = 256


class RedactingAccessLogger(AbstractAccessLogger):
    """Pass as `web.AppRunner(app, access_log_class=RedactingAccessLogger)`.

    One line per request: remote, method, path (query strings may carry secrets, so they are dropped),
    status, bytes, milliseconds, request id and the authenticated caller. The log format is ignored.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.rel_url.path
        if len(path) > _MAX_PATH:
            path = path[:_MAX_PATH] + "…"
        caller = request.get(CALLER_KEY)
        who = f"{caller.user} ({caller.method})" if caller is not None else "-"
        self.logger.info(
            '%s "%s %s" %s %s %.1fms request_id=%s caller=%s',
            request.remote or "-",
            request.method,
            path,
            response.status,
            response.body_length,
            time * 1000,
            request.get(REQUEST_ID_KEY, "-"),
            who,
            extra={"request_id": request.get(REQUEST_ID_KEY, "-")},
        )
