"""Connection to one API server: configuration and authentication from kubernetes_asyncio, HTTP from aiohttp.

KUBE-SEMANTICS.md measured a TokenRequest at 594 µs through kubernetes_asyncio's generated client and 161 µs
with one `trust_env=False` aiohttp session and dict bodies: kubernetes_asyncio's session resolves proxy
environment variables in a worker thread on every request. So kubernetes_asyncio only reads the kubeconfig
(or the in-cluster files) and keeps the bearer token fresh; the proxy is resolved once at start-up here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from broker._kits.proxy import resolve_proxy, split_proxy
from broker._kits.tls import TlsFileError, client_ssl_context

from .errors import KubeTransportError, parse_failure

log = logging.getLogger(__name__)

USER_AGENT = "kube-token-broker/0.1"

# rest.InClusterConfig reads these; the token is a projected, kubelet-rotated file.
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
IN_CLUSTER_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")


class ClusterConfigError(Exception):
    """The kubeconfig or in-cluster configuration of a cluster cannot be used."""


@dataclass(frozen=True)
class InClusterFiles:
    """Where in-cluster configuration lives; tests point it at files of their own."""

    token: Path = IN_CLUSTER_TOKEN
    ca: Path = IN_CLUSTER_CA
    environ: Mapping[str, str] | None = None  # None: os.environ


class Credentials:
    """The Authorization header of every request: static, or refreshed the way kubernetes_asyncio does it.

    In-cluster, kubernetes_asyncio's refresh hook re-reads the projected token file once a minute. An exec
    plugin is re-run when its credential's expirationTimestamp has passed, and only then (a credential
    without expiry is kept until the server rejects it). After a 401 the next call re-reads the file or
    re-runs the plugin, as kubectl does.
    """

    def __init__(self, configuration: Any, loader: Any = None) -> None:
        self._configuration = configuration
        self._loader = loader
        self._exec = loader is not None and _has_exec(loader)
        self._stale = False
        self._exec_flight: asyncio.Lock | None = None
        self.dynamic = configuration.refresh_api_key_hook is not None or self._exec
        self._static = configuration.api_key.get("BearerToken")

    @property
    def static_header(self) -> str | None:
        return None if self.dynamic else self._static

    async def header(self) -> str | None:
        if self._exec:
            if self._stale or self._exec_expired():
                await self._rerun_exec()
            token = getattr(self._loader, "token", None)
            return token if isinstance(token, str) else None
        value = await self._configuration.get_api_key_with_prefix("BearerToken")
        return value if isinstance(value, str) else None

    def _exec_expired(self) -> bool:
        expiry = getattr(self._loader, "exec_plugin_expiry", None)
        if not isinstance(expiry, dt.datetime):
            return False
        now = dt.datetime.now(dt.UTC) if expiry.tzinfo is not None else dt.datetime.now()
        return expiry <= now

    async def _rerun_exec(self) -> None:
        # one plugin run for all the requests that found the credential stale at once
        if self._exec_flight is None:
            self._exec_flight = asyncio.Lock()
        async with self._exec_flight:
            if not (self._stale or self._exec_expired()):
                return
            # load_from_exec_plugin skips the run while its remembered expiry lies ahead
            self._loader.__dict__.pop("exec_plugin_expiry", None)
            await self._loader.load_from_exec_plugin()
            self._stale = False

    def invalidate(self) -> None:
        if self._exec:
            self._stale = True
        elif self._loader is not None and hasattr(self._loader, "token_expires_at"):
            self._loader.token_expires_at = dt.datetime.min


def _has_exec(loader: Any) -> bool:
    user = getattr(loader, "_user", None)
    try:
        return user is not None and "exec" in user
    except TypeError:
        return False


@dataclass
class Connection:
    """Everything needed to talk to one API server, loaded once."""

    server_url: str
    ssl_context: ssl.SSLContext | None
    ca_pem: bytes | None
    credentials: Credentials
    server_hostname: str | None = None
    proxy: str | None = None
    proxy_headers: dict[str, str] | None = field(default=None, repr=False)


async def load_connection(
    *,
    kubeconfig: Path | None,
    context: str | None,
    in_cluster: bool,
    in_cluster_files: InClusterFiles | None = None,
    proxy_environ: Mapping[str, str] | None = None,
) -> Connection:
    """Read a kubeconfig (its context, client cert, token, exec plugin) or the in-cluster files."""
    from kubernetes_asyncio.client import Configuration
    from kubernetes_asyncio.config import ConfigException, load_kube_config
    from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

    configuration = Configuration()
    loader: Any
    try:
        if in_cluster:
            files = in_cluster_files or InClusterFiles()
            loader = InClusterConfigLoader(
                token_filename=str(files.token),
                cert_filename=str(files.ca),
                try_refresh_token=True,
                environ=dict(files.environ) if files.environ is not None else os.environ,
            )
            loader.load_and_set(configuration)
        else:
            if kubeconfig is not None:
                # kubernetes_asyncio logs "Config not found" and then complains of a missing key instead
                with kubeconfig.open("rb"):
                    pass
            # persist_config=False: never write refreshed credentials back into an operator's kubeconfig
            loader = await load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, KeyError, AssertionError, ValueError, TypeError) as exc:
        where = "in-cluster configuration" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
        ctx = f" context {context!r}" if context else ""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ClusterConfigError(f"cannot load {where}{ctx}: {reason}") from exc

    server_url = str(configuration.host).rstrip("/")
    ssl_context, ca_pem = _tls(configuration, server_url)

    # a kubeconfig's proxy-url wins over the environment, as in client-go
    proxy = configuration.proxy or resolve_proxy(server_url, proxy_environ)
    proxy_headers = None
    if proxy:
        proxy, proxy_headers = split_proxy(proxy)
    return Connection(
        server_url=server_url,
        ssl_context=ssl_context,
        ca_pem=ca_pem,
        credentials=Credentials(configuration, loader),
        server_hostname=configuration.tls_server_name or None,
        proxy=proxy,
        proxy_headers=proxy_headers,
    )


def _tls(configuration: Any, server_url: str) -> tuple[ssl.SSLContext | None, bytes | None]:
    """The TLS context rest.RESTClientObject would build (CA, client cert and key, insecure-skip), and the CA."""
    if not server_url.startswith("https://"):
        return None, None
    ca_file = configuration.ssl_ca_cert
    try:
        context = client_ssl_context(
            cafile=ca_file,
            certfile=configuration.cert_file or None,
            keyfile=configuration.key_file or None,
            verify=bool(configuration.verify_ssl),
        )
        ca_pem = Path(ca_file).read_bytes() if ca_file else None
    except (OSError, TlsFileError) as exc:
        raise ClusterConfigError(f"cannot load TLS material for {server_url}: {exc}") from exc
    return context, ca_pem


@dataclass
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]


class HttpTransport:
    """One aiohttp session per cluster; every call has a timeout; non-2xx raises KubeApiError."""

    def __init__(
        self, connection: Connection, *, request_timeout: float, connection_limit: int = 100
    ) -> None:
        self.connection = connection
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._base = connection.server_url
        connector = aiohttp.TCPConnector(
            ssl=connection.ssl_context if connection.ssl_context is not None else True,
            limit=connection_limit,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        self._static_auth = connection.credentials.static_header

    async def close(self) -> None:
        await self._session.close()

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        refresh_on_401: bool = True,
    ) -> Response:
        """`path` starts with "/" and is relative to the server URL: credentials never go to another origin."""
        if not path.startswith("/"):
            raise ValueError(f"not a server path: {path!r}")
        creds = self.connection.credentials
        status, headers, raw = await self._send(method, path, body, params, accept)
        if status >= 400:
            if status == 401 and creds.dynamic and refresh_on_401:
                creds.invalidate()
                return await self.request(
                    method, path, body=body, params=params, accept=accept, refresh_on_401=False
                )
            raise parse_failure(status, headers, raw, method=method, path=path)
        if log.isEnabledFor(logging.DEBUG):
            # never the body: a TokenRequest answer holds the token
            log.debug("%s %s → %d (%d bytes)", method, path, status, len(raw))
        return Response(status, headers, _json_object(raw, status, method, path))

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        accept: str | None,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        creds = self.connection.credentials
        auth = await creds.header() if creds.dynamic else self._static_auth
        headers = {"Authorization": auth} if auth else {}
        if accept:
            headers["Accept"] = accept
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                params=params,
                headers=headers,
                proxy=self.connection.proxy,
                proxy_headers=self.connection.proxy_headers,
                server_hostname=self.connection.server_hostname,
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            raise KubeTransportError("timeout", "no answer within the request timeout", method, path) from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise KubeTransportError("tls", _safe(exc), method, path) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise KubeTransportError("connection", _safe(exc), method, path) from exc


def _json_object(raw: bytes, status: int, method: str, path: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise KubeTransportError("protocol", f"the answer is not JSON ({status})", method, path) from exc
    if not isinstance(parsed, dict):
        raise KubeTransportError("protocol", f"the answer is not a JSON object ({status})", method, path)
    return parsed


def _safe(exc: BaseException) -> str:
    # aiohttp's messages name host and port, never headers; keep just the class and text
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:300]
