"""Wire the broker's components from a config and run them: API listener (TLS), metrics listener,
TLS file rotation, SIGHUP reload of roles, grants and callers."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from prometheus_client.aiohttp import make_aiohttp_handler

from broker import metrics
from broker.audit import AuditStore, open_store
from broker.audit.records import utc_now
from broker.audit_tasks import AuditStreaming, build_streaming
from broker.callers.api_key import ApiKeyAuthenticator
from broker.callers.base import Authenticator
from broker.callers.chain import AuthenticatorChain
from broker.callers.json_fetch import JsonFetcher
from broker.callers.kubernetes import TokenReviewAuthenticator, TokenReviewer
from broker.callers.mtls import MtlsAuthenticator
from broker.callers.oidc import OidcAuthenticator, OidcIssuer, OidcSettings, issuer_ssl_context
from broker.config import BrokerConfig, ConfigError, load_config, split_host_port
from broker.correlations import Correlator
from broker.errors import BrokerError
from broker.http.access_log import RedactingAccessLogger
from broker.http.limits import CallerRateLimits
from broker.http.routes import build_http_app
from broker.http.tls import server_ssl_context
from broker.issuer import ClusterHandle, Issuer
from broker.janitor import Janitor, SweepResult
from broker.kube.client import ClusterClient
from broker.kube.verify import ClusterTokenVerifier
from broker.leader import LeaseElector, default_identity
from broker.operations import Operations
from broker.policy import Policy
from broker.tls_reload import ReloadingServerTLS

log = logging.getLogger(__name__)


def authenticators_from(
    cfg: BrokerConfig, clusters: Callable[[], Mapping[str, ClusterHandle]]
) -> list[Authenticator]:
    """The chain in order: client certificate, API key, OIDC token, Kubernetes TokenReview.

    clusters: the connected clusters, looked up per TokenReview (they connect after the chain is built).
    Raises ValueError when an OIDC issuer's CA bundle cannot be read.
    """
    found: list[Authenticator] = []
    if cfg.server.client_ca is not None and cfg.auth.mtls.enabled:
        found.append(MtlsAuthenticator())
    if cfg.auth.api_keys:
        found.append(ApiKeyAuthenticator([(k.name, k.sha256, k.groups) for k in cfg.auth.api_keys]))
    kube = cfg.auth.kubernetes
    if cfg.auth.oidc:
        issuers = [
            OidcIssuer(
                OidcSettings.from_config(o),
                JsonFetcher(ssl_context=issuer_ssl_context(str(o.ca_file) if o.ca_file else None)),
            )
            for o in cfg.auth.oidc
        ]
        found.append(OidcAuthenticator(issuers, defer_unknown_issuers=kube.enabled))
    if kube.enabled:
        name = cfg.token_review_cluster

        def reviewer() -> TokenReviewer | None:
            handle = clusters().get(name)
            return handle.client if handle is not None else None

        found.append(
            TokenReviewAuthenticator(
                reviewer, audiences=kube.audiences, cluster=name, cache_seconds=kube.cache_seconds
            )
        )
    return found


async def connect_clusters(cfg: BrokerConfig) -> dict[str, ClusterHandle]:
    handles: dict[str, ClusterHandle] = {}
    try:
        for cluster in cfg.clusters:
            client = await ClusterClient.create(
                cluster.name,
                kubeconfig=cluster.kubeconfig,
                context=cluster.context,
                in_cluster=cluster.in_cluster,
                request_timeout=cluster.request_timeout_seconds,
            )
            verifier = ClusterTokenVerifier(client, issuer=cluster.issuer, jwks_uri=cluster.jwks_uri)
            ca_pem = cluster.ca_file.read_bytes() if cluster.ca_file else client.ca_pem
            handles[cluster.name] = ClusterHandle(
                cluster.name, client, verifier, cluster.server or client.server_url, ca_pem
            )
    except BaseException:
        for handle in handles.values():
            await handle.client.close()
        raise
    return handles


@dataclass
class Listeners:
    api_url: str
    metrics_url: str


def _bound_tls_read_buffers() -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size, a class attribute
    meant to be tuned). With 1,000 callers that alone was most of a 516 MB peak; 16 KiB — one TLS record —
    measured 271 MB with no CPU cost (bench/ load section)."""
    asyncio.sslproto.SSLProtocol.max_size = 16 * 1024


class Broker:
    """One running broker. `start()` binds both listeners; `stop()` drains within the shutdown grace."""

    def __init__(self, config_path: Path, config: BrokerConfig | None = None) -> None:
        self.config_path = config_path
        self.config = config or load_config(config_path)
        self._policy = Policy.from_config(self.config)
        self._chain = AuthenticatorChain(authenticators_from(self.config, lambda: self._clusters))
        self._clusters: dict[str, ClusterHandle] = {}
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.store: AuditStore | None = None
        self.janitor: Janitor | None = None
        self.elector: LeaseElector | None = None
        self.streaming: AuditStreaming | None = None
        self.tls: ReloadingServerTLS | None = None
        self.listeners: Listeners | None = None

    @property
    def policy(self) -> Policy:
        return self._policy

    def reload(self) -> bool:
        """Re-read the config file: roles, grants and callers change atomically; a bad file changes nothing."""
        try:
            fresh = load_config(self.config_path)
            policy = Policy.from_config(fresh)
            authenticators = authenticators_from(fresh, lambda: self._clusters)
        except (ConfigError, ValueError) as exc:
            log.error("config reload refused; keeping the running config: %s", exc)
            metrics.config_reload("failure")
            return False
        if fresh.clusters != self.config.clusters or fresh.server != self.config.server:
            log.warning("config reload: [server] and [[clusters]] changes take effect only after a restart")
        # two reference swaps with no await between them: no request sees a half-new config
        self._policy = policy
        self._chain.replace(authenticators)
        self.config = fresh
        metrics.config_reload("success")
        metrics.declare_roles(r.name for r in fresh.roles)
        log.info("config reloaded", extra={"roles": len(fresh.roles), "grants": len(fresh.grants)})
        return True

    async def start(self) -> Listeners:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Listeners:
        _bound_tls_read_buffers()
        server = self.config.server
        # fail closed: without an audit store nothing may be issued, so a broker that cannot open one does
        # not start (migrations run here)
        self.store = open_store(self.config.audit)
        await self.store.open()
        self._closers.append(self.store.close)
        self._clusters = await connect_clusters(self.config)
        settings = self.config.janitor
        if settings.enabled:
            self.elector = LeaseElector(
                self._clusters[self.config.janitor_cluster].client,
                namespace=settings.lease_namespace,
                name=settings.lease_name,
                identity=default_identity(),
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.renew_deadline_seconds,
                retry_period=settings.retry_period_seconds,
                on_change=metrics.set_janitor_leader,
            )
        # [[audit.sinks]] and signed checkpoints, on the janitor leader (a sink's unusable file stops the start)
        self.streaming = build_streaming(self.store, self.config.audit, self.elector)
        self.janitor = Janitor(
            self.store,
            lambda: {name: handle.client for name, handle in self._clusters.items()},
            self.elector,
            interval=self.config.janitor.interval_seconds,
            roles=lambda: {role.name: role for role in self.config.roles},
            on_sweep=_sweep_metrics,
        )
        # no token may stay valid without a completed record: every replica, before it serves, resolves the
        # pending records a crash left (their bound Secrets are deleted, the records marked aborted)
        repaired = await self.janitor.repair_pending(
            utc_now() - timedelta(seconds=self.config.janitor.repair_after_seconds)
        )
        if repaired:
            log.warning("repaired interrupted issuances", extra={"count": repaired})
        issuer = Issuer(
            lambda: self._policy, self._clusters, self.store, early_revocation=self.config.janitor.enabled
        )
        operations = Operations(self.store, self._clusters, lambda: self.config.auth.operator_groups)
        correlator = Correlator(self.store, lambda: self.config.auth.operator_groups)
        app = build_http_app(
            authenticator=self._chain,
            issuer=issuer,
            operations=operations,
            correlator=correlator,
            max_body_bytes=server.max_body_bytes,
            rate_limits=CallerRateLimits(
                lambda: self._policy, on_limited=lambda _method, _user, _scope: metrics.rate_limited_request()
            ),
        )

        tls_files = [server.tls_cert, server.tls_key] + ([server.client_ca] if server.client_ca else [])
        self.tls = ReloadingServerTLS(
            tls_files,
            lambda: server_ssl_context(server.tls_cert, server.tls_key, server.client_ca),
            on_reload=lambda: publish_tls_expiry(server.tls_cert, server.client_ca),
        )
        publish_tls_expiry(server.tls_cert, server.client_ca)
        metrics.declare_roles(r.name for r in self.config.roles)
        api_runner = web.AppRunner(
            app, access_log_class=RedactingAccessLogger, shutdown_timeout=server.shutdown_grace_seconds
        )
        await api_runner.setup()
        self._runners.append(api_runner)
        host, port = split_host_port(server.listen)
        api_site = web.TCPSite(api_runner, host, port, ssl_context=self.tls.context)
        await api_site.start()

        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", make_aiohttp_handler())
        metrics_runner = web.AppRunner(metrics_app, access_log=None)
        await metrics_runner.setup()
        self._runners.append(metrics_runner)
        mhost, mport = split_host_port(server.metrics_listen)
        metrics_site = web.TCPSite(metrics_runner, mhost, mport)
        await metrics_site.start()

        self._tasks.append(asyncio.create_task(self.tls.watch(server.tls_reload_interval_seconds)))
        await self._start_janitor()
        if self.streaming is not None:
            # after the elector: cancelled before it, so the Lease is released after the last delivery round
            self._tasks.append(asyncio.create_task(self.streaming.run()))
        self.listeners = Listeners(
            api_url=f"https://{_bound(api_runner, host)}",
            metrics_url=f"http://{_bound(metrics_runner, mhost)}",
        )
        log.info(
            "broker listening", extra={"api": self.listeners.api_url, "metrics": self.listeners.metrics_url}
        )
        return self.listeners

    async def _start_janitor(self) -> None:
        if self.elector is None or self.janitor is None:
            return  # [janitor] enabled = false: no sweeps here (and the issuer refuses TTLs below 600 s)
        self._tasks.append(asyncio.create_task(self.elector.run()))
        self._tasks.append(asyncio.create_task(self.janitor.run()))

    async def stop(self) -> None:
        # the janitor's loop stops before the elector's, and the Lease is released last so a successor
        # takes over at once instead of waiting out the lease duration
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.elector is not None:
            with contextlib.suppress(BrokerError):
                await self.elector.release()
            self.elector = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for handle in self._clusters.values():
            await handle.client.close()
        self._clusters.clear()
        for close in reversed(self._closers):
            await close()
        self._closers.clear()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _sweep_metrics(result: SweepResult) -> None:
    if not result.leader:
        return
    metrics.janitor_run("failure" if result.failed else "success")
    if result.deleted_secrets:
        metrics.janitor_deleted("secrets", result.deleted_secrets)
    if result.deleted_service_accounts:
        metrics.janitor_deleted("serviceaccounts", result.deleted_service_accounts)


def publish_tls_expiry(cert_file: Path, client_ca: Path | None) -> None:
    """notAfter of the serving certificate and the client CA, for the "certificate expiring soon" alert."""
    files: tuple[tuple[metrics.CertificateKind, Path | None], ...] = (
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


async def serve_until_signalled(broker: Broker) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the config."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, broker.reload)
    await broker.start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await broker.stop()
