"""Running `token-broker` as a user does (a process, its stderr and exit status), and servers that fail in
each way a broker URL can fail."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from broker._kits.pki import CertificateAuthority, write_private
from broker.http.tls import server_ssl_context


@dataclass
class Pki:
    root: Path
    ca: CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority.generate("cli test CA")
        self.path("ca.crt").write_bytes(self.ca.cert_pem)
        served = self.ca.issue_server_cert(["127.0.0.1"])
        self.path("server.crt").write_bytes(served.cert_pem)
        write_private(self.path("server.key"), served.key_pem)
        caller = self.ca.issue_client_cert("jenkins", ["ci"])
        self.path("jenkins.crt").write_bytes(caller.cert_pem)
        write_private(self.path("jenkins.key"), caller.key_pem)

    def path(self, name: str) -> Path:
        return self.root / name


@dataclass
class Canned:
    """An HTTPS server answering every request with one canned response."""

    url: str
    status: int = 200
    body: str = "{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def canned_server(pki: Pki, *, tls: bool = True) -> AsyncIterator[Canned]:
    canned = Canned(url="")

    async def answer(request: web.Request) -> web.Response:
        canned.requests.append({"path": request.path, "headers": dict(request.headers)})
        return web.Response(
            status=canned.status, text=canned.body, content_type=canned.content_type, headers=canned.headers
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    context = (
        server_ssl_context(pki.path("server.crt"), pki.path("server.key"), pki.path("ca.crt"))
        if tls
        else None
    )
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    canned.url = f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield canned
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port whose listener accepts connections (the kernel's backlog) and never says a word."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])
