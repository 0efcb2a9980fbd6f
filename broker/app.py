"""Wire the broker's components from a config and run them: API listener (TLS), metrics listener,
TLS file rotation, SIGHUP reload of roles, grants and callers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from broker.callers.api_key import ApiKeyAuthenticator
from broker.callers.base import Authenticator
from broker.callers.chain import AuthenticatorChain
from broker.callers.json_fetch import JsonFetcher
from broker.callers.kubernetes import TokenReviewAuthenticator, TokenReviewer
from broker.callers.mtls import MtlsAuthenticator
from broker.callers.oidc import OidcAuthenticator, OidcIssuer, OidcSettings, issuer_ssl_context
from broker.config import BrokerConfig, ConfigError, load_config, split_host_port
from broker.http.access_log import RedactingAccessLogger
from broker.http.limits import CallerRateLimits
from broker.http.routes import build_http_app
from broker.http.tls import server_ssl_context
from broker.issuer import ClusterHandle, Issuer
from broker.kube.client import ClusterClient
from broker.kube.verify import ClusterTokenVerifier
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
            return False
        if fresh.clusters != self.config.clusters or fresh.server != self.config.server:
            log.warning("config reload: [server] and [[clusters]] changes take effect only after a restart")
        # two reference swaps with no await between them: no request sees a half-new config
        self._policy = policy
        self._chain.replace(authenticators)
        self.config = fresh
        log.info("config reloaded", extra={"roles": len(fresh.roles), "grants": len(fresh.grants)})
        return True

    async def start(self) -> Listeners:
        server = self.config.server
        self._clusters = await connect_clusters(self.config)
        issuer = Issuer(lambda: self._policy, self._clusters)
        app = build_http_app(
            authenticator=self._chain,
            issuer=issuer,
            max_body_bytes=server.max_body_bytes,
            rate_limits=CallerRateLimits(lambda: self._policy),
        )

        tls_files = [server.tls_cert, server.tls_key] + ([server.client_ca] if server.client_ca else [])
        self.tls = ReloadingServerTLS(
            tls_files, lambda: server_ssl_context(server.tls_cert, server.tls_key, server.client_ca)
        )
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
        self.listeners = Listeners(
            api_url=f"https://{_bound(api_runner, host)}",
            metrics_url=f"http://{_bound(metrics_runner, mhost)}",
        )
        log.info(
            "broker listening", extra={"api": self.listeners.api_url, "metrics": self.listeners.metrics_url}
        )
        return self.listeners

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for handle in self._clusters.values():
            await handle.client.close()
        self._clusters.clear()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


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
