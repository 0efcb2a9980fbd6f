"""KubeSim: an HTTPS Kubernetes API server in-process (tests, demo) or from `token-broker kube-sim`."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from broker._kits.pki import CertificateAuthority, IssuedCert, identity_of, write_private

from . import (
    authentication_v1,
    authorization_v1,
    certificates_v1,
    coordination_v1,
    core_v1,
    csr_signer,
    garbage_collector,
    kubeconfig,
    oidc,
    rbac_v1,
    token_controller,
    token_request,
)
from .context import SimContext
from .discovery import EXTRA_RESOURCES, Discovery
from .faults import Faults
from .kinds import NAMESPACES
from .openapi import OpenAPI
from .options import SimOptions
from .pipeline import AUDIT_KEY, CTX_KEY, FAULTS_KEY, MIDDLEWARES, AuditEvent, AuditLog
from .resources import Registry, ResourceHandler, mux_not_found, not_found_path
from .state import ResourceType, Store
from .status import method_not_allowed
from .tokens import KeyRing
from .watch import EventLog

log = logging.getLogger("kubesim")

ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
# kube-apiserver's default --max-request-bytes is 3 MiB
MAX_REQUEST_BYTES = 3 * 1024 * 1024
# the GET-only paths served outside the resource handler: another method on them is 405, not 404 (the health
# checks and /apis answer every method, as kube-apiserver's muxes do)
_GET_ONLY = {"/version", "/api", "/.well-known/openid-configuration", "/openid/v1/jwks"}


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _server_ssl_context(ca: CertificateAuthority, serving: IssuedCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="kubesim-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(serving.cert_pem + ca.cert_pem)
        write_private(key_file, serving.key_pem)
        context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cadata=ca.cert_pem.decode())
    # kube-apiserver (Go's verifier) accepts client certificates under a CA without keyUsage, such as one made
    # with `openssl req -x509`; Python 3.13's default context would refuse them (VERIFY_X509_STRICT)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # kube-apiserver requests a client certificate but does not require one (bearer tokens, anonymous)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


class KubeSim:
    """A simulated kube-apiserver. `async with KubeSim(...) as sim:` or `await sim.start()` / `await sim.stop()`."""

    def __init__(
        self,
        options: SimOptions | None = None,
        state_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = options or SimOptions()
        self.state_dir = state_dir
        self.host = host
        self.port = port
        self.faults = Faults()
        self.audit = AuditLog()
        self.registry = Registry()
        self.admin_kubeconfig: Path | None = None
        self._ctx: SimContext | None = None
        self._runner: web.AppRunner | None = None
        self._events: EventLog | None = None
        self._stoppers: list[Any] = []

    # -- public properties --------------------------------------------------------------------------------
    @property
    def ctx(self) -> SimContext:
        if self._ctx is None:
            raise RuntimeError("KubeSim is not started")
        return self._ctx

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def url(self) -> str:
        return self.ctx.server_url

    @property
    def ca_pem(self) -> bytes:
        return self.ctx.ca.cert_pem

    @property
    def audit_events(self) -> list[AuditEvent]:
        return list(self.audit.events)

    def client_cert(self, cn: str, groups: list[str] | tuple[str, ...] = ()) -> IssuedCert:
        """A client certificate signed by the cluster CA: user `cn` in `groups`."""
        return self.ctx.ca.issue_client_cert(cn, list(groups))

    def client_ssl_context(self, cert: IssuedCert | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the cluster CA, presenting `cert` when given (for aiohttp clients)."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # as kubectl verifies (see _server_ssl_context)
        if cert is not None:
            with tempfile.TemporaryDirectory(prefix="kubesim-client-") as tmp:
                cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                cert_file.write_bytes(cert.cert_pem)
                write_private(key_file, cert.key_pem)
                context.load_cert_chain(cert_file, key_file)
        return context

    def write_kubeconfig(
        self,
        path: Path,
        *,
        cert: IssuedCert | None = None,
        token: str | None = None,
        namespace: str = "default",
    ) -> Path:
        if cert is None and token is None:
            raise ValueError("a kubeconfig needs a client certificate or a token")
        user = "token-user"
        if cert is not None:
            user = identity_of(cert.cert)[0] or "cert-user"
        config = kubeconfig.build(
            self.url, self.ca_pem, user=user, cert=cert, token=token, namespace=namespace
        )
        return kubeconfig.write(path, config)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _load_or_make_ca(self) -> CertificateAuthority:
        if self.state_dir is not None:
            cert, key = self.state_dir / "ca.crt", self.state_dir / "ca.key"
            if cert.exists() and key.exists():
                # a restarted simulator keeps its CA, so hand-made client certificates stay valid
                return CertificateAuthority.load(cert, key)
        return CertificateAuthority.generate("kubesim-ca")

    def _build_registry(self) -> None:
        def namespaced_types() -> list[ResourceType]:
            return [s.rtype for s in self.registry.namespaced()]

        for strategy in [
            *core_v1.strategies(namespaced_types),
            *rbac_v1.strategies(),
            *coordination_v1.strategies(),
            *certificates_v1.strategies(),
        ]:
            self.registry.add(strategy)

    def _bootstrap(self, store: Store) -> None:
        for name in self.options.initial_namespaces:
            store.create(NAMESPACES, None, core_v1.namespace_object(name))
        rbac_v1.bootstrap(store, self.options.public_issuer_discovery)

    def _build_app(self, ctx: SimContext, events: EventLog) -> web.Application:
        app = web.Application(middlewares=MIDDLEWARES, client_max_size=MAX_REQUEST_BYTES)
        app[CTX_KEY] = ctx
        app[FAULTS_KEY] = self.faults
        app[AUDIT_KEY] = self.audit
        # handlers of their own first: the catch-all resource route must come last
        app.add_routes(token_request.routes(ctx))
        app.add_routes(authentication_v1.routes(ctx))
        app.add_routes(oidc.routes(ctx))
        app.add_routes(authorization_v1.routes(ctx))
        app.add_routes(_health_routes())
        discovery = Discovery(ctx, self.registry)
        app.add_routes(discovery.routes())
        app.add_routes(OpenAPI(self.registry).routes())
        handler = ResourceHandler(ctx, self.registry, NAMESPACES, events)
        served_elsewhere = {(e.group_version, e.name) for e in EXTRA_RESOURCES if "/" not in e.name}

        async def catch_all(request: web.Request) -> web.StreamResponse:
            if not _api_path(request.path, discovery.groups()):
                return mux_not_found()
            info = request["request_info"]
            if not info.is_resource_request:
                if request.path.rstrip("/") in _GET_ONLY or request.path in _GET_ONLY:
                    raise method_not_allowed()
                raise not_found_path()
            group_version = f"{info.api_group}/{info.api_version}" if info.api_group else info.api_version
            if (group_version, info.resource) in served_elsewhere and not info.name:
                raise method_not_allowed()
            return await handler.handle(request)

        app.router.add_route("*", "/{tail:.*}", catch_all)
        return app

    async def start(self) -> KubeSim:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> KubeSim:
        ca = self._load_or_make_ca()
        keys = (
            KeyRing.from_pem(self.options.signing_key_pem)
            if self.options.signing_key_pem
            else KeyRing.generate()
        )
        store = Store()
        ctx = SimContext(self.options, store, keys, ca)
        self._ctx = ctx
        self._events = EventLog(store)
        self._build_registry()
        self._stoppers.append(core_v1.install_default_serviceaccounts(store))
        controller = token_controller.install(ctx)
        self._stoppers.append(controller.stop)
        self._stoppers.append(csr_signer.install(ctx).stop)
        collector = garbage_collector.install(store, lambda: [s.rtype for s in self.registry.all()])
        self._stoppers.append(collector.stop)
        self._bootstrap(store)

        hosts = list(dict.fromkeys(["127.0.0.1", "localhost", "::1", self.host]))
        serving = ca.issue_server_cert(hosts)
        app = self._build_app(ctx, self._events)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=_server_ssl_context(ca, serving))
        await site.start()
        port = self._runner.addresses[0][1]
        ctx.server_url = f"https://{_url_host(self.host)}:{port}"
        self.port = port
        if self.state_dir is not None:
            self._write_state(ca, keys)
        log.info("kubesim: serving %s", ctx.server_url)
        return self

    def _write_state(self, ca: CertificateAuthority, keys: KeyRing) -> None:
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "ca.crt").write_bytes(ca.cert_pem)
        write_private(self.state_dir / "ca.key", ca.key_pem)
        write_private(self.state_dir / "sa.key", keys.signing_key_pem())
        # an administrator made by hand: CN=admin, O=system:masters, signed by the cluster CA
        admin = self.client_cert(ADMIN_USER, [ADMIN_GROUP])
        self.admin_kubeconfig = self.write_kubeconfig(self.state_dir / "admin.kubeconfig", cert=admin)

    async def stop(self) -> None:
        if self._events is not None:
            self._events.close()
        for stopper in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                stopper()
        self._stoppers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubeSim:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _api_path(path: str, groups: list[str]) -> bool:
    """Under /api, or /apis/<a served group>: the API's handlers answer with a Status, even a 404."""
    if path.rstrip("/") in _GET_ONLY:
        return True
    parts = path.split("/")
    if len(parts) > 1 and parts[1] == "api":
        return True
    return len(parts) > 2 and parts[1] == "apis" and parts[2] in groups


def _health_routes() -> list[web.RouteDef]:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    # healthz.InstallHandler registers with HandleFunc: any method is answered
    return [web.route("*", path, ok) for path in ("/healthz", "/livez", "/readyz")]
