"""One running broker: its components wired from a config (wiring.py), started and stopped as one — audit
store, clusters, start-up repair, the janitor and its Lease, audit streaming, the API and metrics listeners, TLS file rotation —
and SIGHUP reload of roles, grants and callers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from broker import metrics
from broker.app.listeners import Listeners, bound_tls_read_buffers, reloading_tls, serve_api, serve_metrics
from broker.app.stores import open_store
from broker.app.streaming import build_streaming
from broker.app.wiring import authenticators_from, connect_clusters, elector_from, http_app_from, policy_from
from broker.audit.records import utc_now
from broker.audit.store import AuditStore
from broker.background.janitor import Janitor
from broker.background.leader import LeaseElector
from broker.background.streaming import AuditStreaming
from broker.callers.chain import AuthenticatorChain
from broker.domain.errors import BrokerError
from broker.http.tls_reload import ReloadingServerTLS
from broker.policy import Policy
from broker.settings import BrokerConfig, ConfigError, load_config
from broker.usecases.clusters import ClusterHandle

log = logging.getLogger(__name__)

__all__ = ["Broker", "Listeners", "serve_until_signalled"]


class Broker:
    """One running broker. `start()` binds both listeners; `stop()` drains within the shutdown grace."""

    def __init__(self, config_path: Path, config: BrokerConfig | None = None) -> None:
        self.config_path = config_path
        self.config = config or load_config(config_path)
        self._policy = policy_from(self.config)
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
            policy = policy_from(fresh)
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
        bound_tls_read_buffers()
        # fail closed: without an audit store nothing may be issued, so a broker that cannot open one does
        # not start (migrations run here)
        store = self.store = open_store(self.config.audit)
        await store.open()
        self._closers.append(store.close)
        self._clusters = await connect_clusters(self.config)
        await self._repair(store)
        # [[audit.sinks]] and signed checkpoints, on the janitor leader (a sink's unusable file stops the start)
        self.streaming = build_streaming(store, self.config.audit, self.elector)
        app = http_app_from(lambda: self.config, lambda: self._policy, self._chain, self._clusters, store)
        self.listeners = await self._listen(app)
        self._start_janitor()
        if self.streaming is not None:
            # after the elector: cancelled before it, so the Lease is released after the last delivery round
            self._tasks.append(asyncio.create_task(self.streaming.run()))
        log.info(
            "broker listening", extra={"api": self.listeners.api_url, "metrics": self.listeners.metrics_url}
        )
        return self.listeners

    async def _repair(self, store: AuditStore) -> None:
        """No token may stay valid without a completed record: every replica, before it serves, resolves the
        pending records a crash left (their bound Secrets are deleted, the records marked aborted)."""
        settings = self.config.janitor
        self.elector = elector_from(self.config, self._clusters)
        self.janitor = Janitor(
            store,
            lambda: {name: handle.client for name, handle in self._clusters.items()},
            self.elector,
            interval=settings.interval_seconds,
            roles=lambda: self._policy.roles,
        )
        repaired = await self.janitor.repair_pending(
            utc_now() - timedelta(seconds=settings.repair_after_seconds)
        )
        if repaired:
            log.warning("repaired interrupted issuances", extra={"count": repaired})

    async def _listen(self, app: web.Application) -> Listeners:
        server = self.config.server
        self.tls = reloading_tls(server)
        metrics.declare_roles(r.name for r in self.config.roles)
        api_runner, api_url = await serve_api(app, server, self.tls)
        self._runners.append(api_runner)
        metrics_runner, metrics_url = await serve_metrics(server)
        self._runners.append(metrics_runner)
        self._tasks.append(asyncio.create_task(self.tls.watch(server.tls_reload_interval_seconds)))
        return Listeners(api_url=api_url, metrics_url=metrics_url)

    def _start_janitor(self) -> None:
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
