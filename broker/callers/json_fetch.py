"""GET a small JSON document (OIDC discovery, a JWKS) from an issuer, with a deadline and a size cap.

One short-lived aiohttp session per fetch: key sets are fetched at most a few times an hour, and a session that
lives no longer than its request needs no shutdown hook. Proxies come from HTTPS_PROXY/NO_PROXY, resolved here
rather than by aiohttp's trust_env (which looks them up in a worker thread on every request).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from broker._kits.jwks import parse_max_age
from broker._kits.proxy import resolve_proxy
from broker._kits.tls import client_ssl_context
from broker.domain.errors import BrokerError, unavailable, upstream_refused

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 1 << 20
RETRY_AFTER_SECONDS = 5.0


class JsonFetcher:
    """`get(url)` → (document, Cache-Control max-age or None). Unreachable, timed out or 5xx → BrokerError 503;
    any other non-200, oversized or non-JSON-object answer → BrokerError 502."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        proxy_for: Callable[[str], str | None] = resolve_proxy,
    ) -> None:
        # the system trust store unless told otherwise, through the one client context builder (not aiohttp's
        # default, which is Python 3.13's strict one)
        self._ssl = ssl_context if ssl_context is not None else client_ssl_context()
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._proxy_for = proxy_for
        self.requests = 0

    async def get(self, url: str, *, what: str) -> tuple[dict[str, Any], float | None]:
        """what: a phrase for messages, e.g. "the signing keys of issuer https://gitlab.example.com"."""
        self.requests += 1
        try:
            # asyncio.timeout bounds everything, also a server that accepts and then never answers
            async with asyncio.timeout(self._timeout):
                return await self._get(url, what)
        except TimeoutError:
            raise unavailable(
                f"cannot fetch {what}: no answer within {self._timeout:g} s", retry_after=RETRY_AFTER_SECONDS
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise unavailable(
                f"cannot fetch {what}: {exc.__class__.__name__}",
                retry_after=RETRY_AFTER_SECONDS,
                reason=f"cannot fetch {what} from {url}: {exc}",
            ) from None

    async def _get(self, url: str, what: str) -> tuple[dict[str, Any], float | None]:
        headers = {"Accept": "application/json, application/jwk-set+json"}
        connector = aiohttp.TCPConnector(ssl=self._ssl)
        async with (
            aiohttp.ClientSession(connector=connector, trust_env=False) as session,
            session.get(url, headers=headers, proxy=self._proxy_for(url), allow_redirects=False) as resp,
        ):
            if resp.status != 200:
                raise _failure(resp.status, what, url)
            body = await resp.content.read(self._max_bytes + 1)
            if len(body) > self._max_bytes:
                raise upstream_refused(f"cannot use {what}: the answer exceeds {self._max_bytes} bytes")
            max_age = parse_max_age(resp.headers.get("Cache-Control"))
        try:
            document = json.loads(body)
        except ValueError:
            raise upstream_refused(f"cannot use {what}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise upstream_refused(f"cannot use {what}: the answer is not a JSON object")
        return document, max_age


def _failure(status: int, what: str, url: str) -> BrokerError:
    reason = f"GET {url} answered {status}"
    if status >= 500 or status == 429:
        return unavailable(
            f"cannot fetch {what}: the server answered {status}",
            retry_after=RETRY_AFTER_SECONDS,
            reason=reason,
        )
    return upstream_refused(f"cannot fetch {what}: the server answered {status}", reason=reason)
