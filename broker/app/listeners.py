"""The two listeners: the API over TLS (rotating its certificate files), and /metrics on plain HTTP."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from prometheus_client.aiohttp import make_aiohttp_handler

from broker import metric_labels, metrics
from broker.http.access_log import RedactingAccessLogger
from broker.http.tls import server_ssl_context
from broker.http.tls_reload import ReloadingServerTLS
from broker.settings import ServerConfig, split_host_port


@dataclass
class Listeners:
    api_url: str
    metrics_url: str


def bound_tls_read_buffers() -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size, a class attribute
    meant to be tuned). With 1,000 callers that alone was most of a 516 MB peak; 16 KiB — one TLS record —
    measured 271 MB with no CPU cost (bench/ load section)."""
    asyncio.sslproto.SSLProtocol.max_size = 16 * 1024


def reloading_tls(server: ServerConfig) -> ReloadingServerTLS:
    files = [server.tls_cert, server.tls_key] + ([server.client_ca] if server.client_ca else [])
    tls = ReloadingServerTLS(
        files,
        lambda: server_ssl_context(server.tls_cert, server.tls_key, server.client_ca),
        on_reload=lambda: publish_tls_expiry(server.tls_cert, server.client_ca),
    )
    publish_tls_expiry(server.tls_cert, server.client_ca)
    return tls


async def serve_api(
    app: web.Application, server: ServerConfig, tls: ReloadingServerTLS
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(
        app, access_log_class=RedactingAccessLogger, shutdown_timeout=server.shutdown_grace_seconds
    )
    await runner.setup()
    host, port = split_host_port(server.listen)
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls.context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, f"https://{_bound(runner, host)}"


async def serve_metrics(server: ServerConfig) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = split_host_port(server.metrics_listen)
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, f"http://{_bound(runner, host)}"


def publish_tls_expiry(cert_file: Path, client_ca: Path | None) -> None:
    """notAfter of the serving certificate and the client CA, for the "certificate expiring soon" alert."""
    files: tuple[tuple[metric_labels.CertificateKind, Path | None], ...] = (
        ("server", cert_file),
        ("client_ca", client_ca),
    )
    for kind, path in files:
        if path is None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue  # the TLS layer reports unreadable files; the gauge keeps its last value
        metrics.set_tls_certificate_expiry(kind, cert.not_valid_after_utc)


def _bound(runner: web.AppRunner, host: str) -> str:
    """host:port actually bound (port 0 in the config means an ephemeral port)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            shown = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
            return f"{shown}:{address[1]}"
    return host
