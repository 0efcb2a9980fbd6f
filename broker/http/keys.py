"""Typed keys of what the HTTP application holds (aiohttp AppKey): the authenticator and the use cases' ports."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.callers.chain import AuthenticatorChain
from broker.domain.identity import Caller
from broker.usecases.ports import (
    CorrelationPort,
    IntrospectionPort,
    IssuancePort,
    RecordsPort,
    RevocationPort,
)

AUTHENTICATOR = web.AppKey("authenticator", AuthenticatorChain)
ISSUANCE = web.AppKey("issuance", IssuancePort)
# absent: no audit store configured (the audit endpoints answer 503)
RECORDS = web.AppKey("records", RecordsPort)
REVOCATION = web.AppKey("revocation", RevocationPort)
INTROSPECTION = web.AppKey("introspection", IntrospectionPort)
CORRELATION = web.AppKey("correlation", CorrelationPort)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
# the authenticated caller, once known (the access log names it)
CALLER_KEY = web.RequestKey("caller", Caller)
