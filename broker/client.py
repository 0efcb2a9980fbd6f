"""A small client of the broker's own HTTP API, used by the CLI (`issue`, `credential`, `kubeconfig`)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from broker.tls_client import client_ssl_context


@dataclass
class BrokerClientError(Exception):
    status: int
    title: str
    detail: str
    retry_after: str | None = None

    def __str__(self) -> str:
        suffix = f" (retry after {self.retry_after}s)" if self.retry_after else ""
        return f"{self.status} {self.title}: {self.detail}{suffix}"


@dataclass(frozen=True)
class BrokerEndpoint:
    url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    api_key: str | None = None
    timeout: float = 30.0

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https://"):
            return False
        return client_ssl_context(cafile=self.ca_file, certfile=self.cert_file, keyfile=self.key_file)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


async def _problem(resp: aiohttp.ClientResponse) -> BrokerClientError:
    try:
        body: Any = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    return BrokerClientError(
        resp.status,
        str(body.get("title", resp.reason or "")),
        str(body.get("detail", "")),
        resp.headers.get("Retry-After"),
    )


async def request(
    endpoint: BrokerEndpoint,
    method: str,
    path: str,
    *,
    json_body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    accept: str = "application/json",
) -> tuple[int, str, str]:
    """One call to the broker; returns (status, content type, body text) or raises BrokerClientError."""
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    headers = {"Accept": accept, **endpoint.headers()}
    # trust_env=False: the broker is usually reached directly; proxies from the environment are not applied
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.request(
            method,
            endpoint.url.rstrip("/") + path,
            json=json_body,
            params=params,
            headers=headers,
            ssl=endpoint.ssl_context(),
        ) as resp,
    ):
        if resp.status >= 400:
            raise await _problem(resp)
        return resp.status, resp.content_type, await resp.text()
