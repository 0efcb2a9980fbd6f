"""From an aiohttp request to an authenticated Caller."""

from __future__ import annotations

import ssl

from aiohttp import web

from broker.callers.base import CallerRequest
from broker.domain.identity import Caller
from broker.http.keys import AUTHENTICATOR, CALLER_KEY


def peer_certificate_der(request: web.Request) -> bytes | None:
    """The client certificate the TLS handshake verified (CERT_OPTIONAL: None when none was sent)."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


def caller_request(request: web.Request) -> CallerRequest:
    return CallerRequest(
        peer_cert_der=peer_certificate_der(request),
        headers=request.headers,
        remote=request.remote or "",
    )


async def authenticate(request: web.Request) -> Caller:
    """The caller, or BrokerError 401 (which the error middleware turns into problem+json + WWW-Authenticate)."""
    caller = await request.app[AUTHENTICATOR].authenticate(caller_request(request))
    request[CALLER_KEY] = caller
    return caller
