"""Typed keys of what the HTTP application holds (aiohttp AppKey)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.callers.chain import AuthenticatorChain
from broker.contracts import IssuerPort, OperationsPort
from broker.domain.identity import Caller
from broker.http.limits import CallerRateLimits

AUTHENTICATOR = web.AppKey("authenticator", AuthenticatorChain)
ISSUER = web.AppKey("issuer", IssuerPort)
# absent: no audit store configured (the audit endpoints answer 503)
OPERATIONS = web.AppKey("operations", OperationsPort)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
# absent: no per-caller rate limit
RATE_LIMITS = web.AppKey("rate_limits", CallerRateLimits)
# the authenticated caller, once known (the access log names it)
CALLER_KEY = web.RequestKey("caller", Caller)
