"""The broker's HTTP application served over TLS for a test, the callers' certificates, and calling it.

One PKI layout for every HTTP test: `server-ca.crt`, `server.crt`/`server.key` for 127.0.0.1, `client-ca.crt` that
the server trusts, and `<name>.crt`/`<name>.key` per test caller (CN = user, O = groups), keys 0600.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from broker._kits.pki import CertificateAuthority, write_private
from broker.http import RedactingAccessLogger, server_ssl_context


@dataclass(frozen=True)
class TestPki:
    directory: Path
    server_ca: CertificateAuthority
    client_ca: CertificateAuthority

    def path(self, name: str) -> Path:
        return self.directory / name

    def client_context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the server CA; with `cert`, presenting <cert>.crt/<cert>.key."""
        ctx = ssl.create_default_context(cafile=str(self.path("server-ca.crt")))
        if cert is not None:
            ctx.load_cert_chain(self.path(f"{cert}.crt"), self.path(f"{cert}.key"))
        return ctx

    def write_client(
        self, name: str, user: str, groups: Sequence[str], ca: CertificateAuthority | None = None
    ) -> None:
        issued = (ca or self.client_ca).issue_client_cert(user, list(groups))
        self.path(f"{name}.crt").write_bytes(issued.cert_pem)
        write_private(self.path(f"{name}.key"), issued.key_pem)


def make_pki(
    directory: Path, callers: Mapping[str, tuple[str, Sequence[str]]], label: str = "test"
) -> TestPki:
    """A server CA and certificate, a client CA, and a certificate per caller {name: (user, groups)}."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = TestPki(
        directory,
        CertificateAuthority.generate(f"{label}-server-ca"),
        CertificateAuthority.generate(f"{label}-client-ca"),
    )
    served = pki.server_ca.issue_server_cert(["127.0.0.1", "localhost"])
    pki.path("server-ca.crt").write_bytes(pki.server_ca.cert_pem)
    pki.path("server.crt").write_bytes(served.cert_pem)
    write_private(pki.path("server.key"), served.key_pem)
    pki.path("client-ca.crt").write_bytes(pki.client_ca.cert_pem)
    for name, (user, groups) in callers.items():
        pki.write_client(name, user, groups)
    return pki


async def serve(
    app: web.Application, pki: TestPki, client_cas: str = "client-ca.crt"
) -> tuple[web.AppRunner, str]:
    """Serve `app` on 127.0.0.1 over TLS with the access log the broker uses; (runner to clean up, base URL)."""
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    ctx = server_ssl_context(pki.path("server.crt"), pki.path("server.key"), pki.path(client_cas))
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}"


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    ssl_context: ssl.SSLContext,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    data: bytes | str | None = None,
) -> tuple[aiohttp.ClientResponse, bytes]:
    """One call; the response (already released) and its whole body."""
    kwargs: dict[str, Any] = {"headers": dict(headers or {}), "ssl": ssl_context, "params": params}
    if json_body is not None:
        kwargs["json"] = json_body
    if data is not None:
        kwargs["data"] = data
    async with session.request(method, url, **kwargs) as response:
        return response, await response.read()


def assert_problem(response: aiohttp.ClientResponse, body: bytes, status: int) -> dict[str, Any]:
    """Every error is application/problem+json with type, title, status and detail, and a request id."""
    assert response.status == status, body
    assert response.content_type == "application/problem+json", response.content_type
    doc = json.loads(body)
    assert isinstance(doc, dict)
    assert {"type", "title", "status", "detail"} <= doc.keys()
    assert doc["status"] == status
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["detail"], str) and doc["detail"]
    assert response.headers["X-Request-ID"] == doc["request_id"]
    return doc
