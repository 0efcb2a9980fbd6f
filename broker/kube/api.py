"""One cluster's API, as every resource module calls it: a transport (aiohttp, or an in-memory one in tests),
a deadline on every round trip (the transport's request timeout), bounded retries for calls that are safe to
repeat, a metric per round trip, and ONE table that says what a failure means to the broker's caller.

Failure meanings (every call raises BrokerError, never a library exception):
- 401 → 502 (the broker's own credentials were rejected), 403 → 502 naming the missing permission.
- 429, 5xx, timeouts, connection errors → retried within the RetryPolicy when the call is safe to repeat,
  then 503 with Retry-After (the server's value when it sent one).
- TLS failures and unreadable answers → 502; any other status → 502 with the server's message.
- A status the caller expects (`expect`) is its answer, not a failure: the KubeApiError reaches the caller,
  which knows what a 404 or a 409 means for it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from broker import metrics
from broker.domain.errors import BrokerError, ErrorKind, unavailable, upstream_refused

from .errors import DEFAULT_RETRY_AFTER, KubeApiError, KubeError, KubeTransportError, missing_permission
from .request_labels import request_labels
from .retry import NO_RETRY, RetryPolicy, call_with_retries
from .transport import Response


class Transport(Protocol):
    """One round trip to the API server; non-2xx raises KubeApiError, no answer KubeTransportError."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
    ) -> Response: ...

    async def close(self) -> None: ...


# What a failure means: its kind, how the caller is told, and whether the server's own message is shown.
_TRANSPORT_FAILURES: dict[str, tuple[ErrorKind, str, bool]] = {
    "tls": (ErrorKind.UPSTREAM_REFUSED, "TLS to the Kubernetes API server failed", False),
    "protocol": (ErrorKind.UPSTREAM_REFUSED, "the Kubernetes API server sent an unreadable answer", False),
    "timeout": (ErrorKind.UPSTREAM_UNAVAILABLE, "the Kubernetes API server timed out", False),
    "connection": (ErrorKind.UPSTREAM_UNAVAILABLE, "the Kubernetes API server is unreachable", False),
}


def _answered(exc: KubeApiError) -> tuple[ErrorKind, str, bool]:
    if exc.transient:
        busy = "is throttling the broker" if exc.status == 429 else f"answered {exc.status} {exc.reason}"
        return ErrorKind.UPSTREAM_UNAVAILABLE, f"the Kubernetes API server {busy}", False
    if exc.status == 401:
        return (
            ErrorKind.UPSTREAM_REFUSED,
            "the Kubernetes API server rejected the broker's own credentials",
            False,
        )
    permission = missing_permission(exc.message) if exc.status == 403 else None
    if permission:
        return ErrorKind.UPSTREAM_REFUSED, f"the broker is not allowed to {permission}", False
    if exc.status == 403:
        return ErrorKind.UPSTREAM_REFUSED, "the Kubernetes API server forbids it", True
    return ErrorKind.UPSTREAM_REFUSED, f"the Kubernetes API server answered {exc.status} {exc.reason}", True


def to_broker_error(exc: KubeError, *, action: str, cluster: str = "") -> BrokerError:
    """The meaning of a failure while doing `action` (e.g. "request a token for ci/deployer")."""
    if isinstance(exc, KubeTransportError):
        kind, what, quoted = _TRANSPORT_FAILURES.get(exc.kind, _TRANSPORT_FAILURES["connection"])
    else:
        kind, what, quoted = _answered(exc)
    detail = f"cannot {action}: {what}" + (f" (cluster {cluster})" if cluster else "")
    if quoted and isinstance(exc, KubeApiError):
        detail += f": {exc.message}"
    if kind is ErrorKind.UPSTREAM_UNAVAILABLE:
        retry_after = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
        return unavailable(detail, retry_after=retry_after, reason=str(exc))
    return upstream_refused(detail, reason=str(exc))


class KubeApi:
    """The calls of one cluster, all through one transport. Close it on shutdown."""

    def __init__(
        self,
        name: str,
        transport: Transport,
        *,
        server_url: str,
        retry: RetryPolicy | None = None,
        ca_pem: bytes | None = None,
        proxy: str | None = None,
    ) -> None:
        self.name = name
        self.server_url = server_url
        # the CA bundle of the kubeconfig (None: the system trust store), for rendering kubeconfigs
        self.ca_pem = ca_pem
        # the proxy every call goes through (resolved once at start-up), without credentials
        self.proxy = proxy
        self.retry = retry or RetryPolicy()
        self._transport = transport

    async def close(self) -> None:
        await self._transport.close()

    def failure(self, exc: KubeError, action: str) -> BrokerError:
        return to_broker_error(exc, action=action, cluster=self.name)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
    ) -> Response:
        """One round trip, recorded in token_broker_kube_requests_total and its latency histogram.

        Every request passes here (each retry is its own round trip, as in client-go's
        rest_client_requests_total). The transport's one re-send after a 401 with refreshed credentials is
        part of the same round trip. No HTTP answer, or one that is not a JSON object, records code None
        ("error"); a cancelled call records nothing: nobody waited for its answer. Failures stay KubeErrors.
        """
        verb, resource = request_labels(method, path, params)
        started = time.perf_counter()
        try:
            resp = await self._transport.request(method, path, body=body, params=params, accept=accept)
        except KubeApiError as exc:
            metrics.kube_request(verb, resource, exc.status, time.perf_counter() - started)
            raise
        except KubeTransportError:
            metrics.kube_request(verb, resource, None, time.perf_counter() - started)
            raise
        metrics.kube_request(verb, resource, resp.status, time.perf_counter() - started)
        return resp

    async def call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        retry: bool = True,
        expect: Collection[int] = (),
    ) -> Response:
        """request(), retried when `retry` and the failure is transient; a failure becomes a BrokerError about
        `action`, except a status in `expect`, which reaches the caller as the KubeApiError."""
        try:
            return await call_with_retries(
                self.retry if retry else NO_RETRY,
                lambda: self.request(method, path, body=body, params=params, accept=accept),
            )
        except KubeApiError as exc:
            if exc.status in expect:
                raise
            raise self.failure(exc, action) from None
        except KubeTransportError as exc:
            raise self.failure(exc, action) from None

    # -- generic reads (tests, diagnostics) ------------------------------------------------------------------
    async def get_json(self, path: str) -> dict[str, Any]:
        """GET any server path as JSON (retried); failures mapped like every other call."""
        return (await self.call("GET", path, action=f"read {path}")).body

    async def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON body once (not retried: the caller knows whether it is safe to repeat)."""
        return (await self.call("POST", path, action=f"post to {path}", body=body, retry=False)).body
