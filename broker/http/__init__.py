"""The HTTP edge: parse and validate requests, authenticate callers, render answers, problem+json errors."""

from broker.http.access_log import RedactingAccessLogger
from broker.http.request_id import RequestIdLogFilter, request_id_var
from broker.http.routes import build_http_app
from broker.http.tls import server_ssl_context

__all__ = [
    "RedactingAccessLogger",
    "RequestIdLogFilter",
    "build_http_app",
    "request_id_var",
    "server_ssl_context",
]
