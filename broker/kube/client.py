"""ClusterClient: the broker's operations against one Kubernetes API server.

Failure meanings (every operation raises BrokerError, never a library exception):
- 401 → 502 (the broker's own credentials were rejected), 403 → 502 naming the missing permission.
- 429, 5xx, timeouts, connection errors → retried within the RetryPolicy when the call is safe to repeat,
  then 503 with Retry-After (the server's value when it sent one).
- 404/409/422: per operation, documented on each method.

What is retried: GETs, the ServiceAccount create (a repeat answers 409 AlreadyExists → GET), Secret creates
(the client picks the name, so a repeat answers 409 → GET), deletes (a repeat answers 404), and TokenRequest.
A TokenRequest is not idempotent: a repeat after a timeout may mint a second token. That is acceptable,
because the first one was never returned to anyone, and when bound to a Secret it dies with that Secret.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker import metrics
from broker._kits.jwks import parse_max_age
from broker._kits.rfc3339 import parse_time
from broker._kits.singleflight import SingleFlight
from broker.domain.errors import BrokerError, ErrorKind, unavailable, unprocessable, upstream_refused

from .errors import DEFAULT_RETRY_AFTER, KubeApiError, KubeError, KubeTransportError, to_broker_error
from .objects import LegacyToken, SecretRef, ServiceAccountRef, TokenResponse
from .request_labels import request_labels
from .retry import NO_RETRY, RetryPolicy, call_with_retries
from .transport import Connection, InClusterFiles, Response, Transport, load_connection

# annotation on a binding Secret naming the service account whose token is bound to it
BINDING_SA_ANNOTATION = "token-broker.io/service-account"
# label on legacy token Secrets the broker created, so it finds them again with a label selector
LEGACY_FOR_LABEL = "token-broker.io/legacy-token-for"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
# the token controller's annotations and labels (pkg/controller/serviceaccount, legacytokentracking)
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_INVALID_LABEL = "kubernetes.io/legacy-token-invalid-since"
# the API server publishes its signing keys here whatever jwks_uri the discovery document names
JWKS_PATH = "/openid/v1/jwks"
JWKS_ACCEPT = "application/jwk-set+json, application/json"

# apimachinery validation: namespaces are DNS-1123 labels, most object names DNS-1123 subdomains
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# RFC 9111 §5.5 warning-value: warn-code SP warn-agent SP warn-text [SP warn-date]
_WARNING = re.compile(r'(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+"[^"]*")?')
# names.SimpleNameGenerator's alphabet has no vowels (no accidental words); we draw more characters
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX = 10


class LeaseConflict(Exception):
    """A Lease write lost a race: 409 Conflict (stale resourceVersion) or AlreadyExists on create.

    Not a BrokerError: for leader election it is an answer ("someone else wrote first"), not a failure.
    """

    def __init__(self, namespace: str, name: str, message: str) -> None:
        super().__init__(f'lease "{namespace}/{name}": {message}')
        self.namespace = namespace
        self.name = name


def parse_warnings(values: Iterable[str]) -> tuple[str, ...]:
    """Texts of `Warning` headers, e.g. `299 - "requested expiration of 7200 seconds shortened to 3600 seconds"`."""
    out: list[str] = []
    for value in values:
        for match in _WARNING.finditer(value):
            out.append(re.sub(r"\\(.)", r"\1", match.group(3)))
    return tuple(out)


def _check_namespace(namespace: str) -> None:
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise unprocessable(f"{namespace!r} is not a valid namespace name")


def _check_name(kind: str, name: str) -> None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise unprocessable(f"{name!r} is not a valid {kind} name")


def _random_name(prefix: str) -> str:
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_NAME_SUFFIX))
    return prefix[: 253 - _NAME_SUFFIX] + suffix


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _legacy_label_value(service_account: str) -> str:
    if len(service_account) <= 63 and _LABEL_VALUE.match(service_account):
        return service_account
    # a label value holds at most 63 characters; the annotation check below still compares the full name
    return "sha256-" + hashlib.sha256(service_account.encode()).hexdigest()[:40]


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


class ClusterClient:
    """One per configured cluster; all calls share one aiohttp session. Close it on shutdown."""

    def __init__(
        self,
        name: str,
        connection: Connection,
        *,
        request_timeout: float,
        retry: RetryPolicy | None = None,
        sa_cache_size: int = 4096,
    ) -> None:
        self.name = name
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self._transport = Transport(connection, request_timeout=request_timeout)
        self._connection = connection
        self._sa_cache: OrderedDict[tuple[str, str], ServiceAccountRef] = OrderedDict()
        self._sa_cache_size = sa_cache_size
        self._sa_flight: SingleFlight[tuple[str, str, bool], ServiceAccountRef] = SingleFlight()
        self._legacy_flight: SingleFlight[tuple[str, str], LegacyToken] = SingleFlight()

    @classmethod
    async def create(
        cls,
        name: str,
        *,
        kubeconfig: Path | None,
        context: str | None,
        in_cluster: bool,
        request_timeout: float,
        retry: RetryPolicy | None = None,
        in_cluster_files: InClusterFiles | None = None,
    ) -> ClusterClient:
        """Load the kubeconfig (client cert, token, exec plugin) or the in-cluster files; no network call.

        Raises transport.ClusterConfigError when the configuration cannot be used.
        """
        connection = await load_connection(
            kubeconfig=kubeconfig, context=context, in_cluster=in_cluster, in_cluster_files=in_cluster_files
        )
        return cls(name, connection, request_timeout=request_timeout, retry=retry)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> ClusterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def server_url(self) -> str:
        return self._connection.server_url

    @property
    def ca_pem(self) -> bytes | None:
        """The CA bundle the kubeconfig names (None: the system trust store), for rendering kubeconfigs."""
        return self._connection.ca_pem

    @property
    def proxy(self) -> str | None:
        """The proxy every call goes through (resolved once at start-up), without credentials."""
        return self._connection.proxy

    # -- plumbing ---------------------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
    ) -> Response:
        """One round trip, recorded in token_broker_kube_requests_total and its latency histogram.

        Every request of this client passes here (each retry is its own round trip, as in client-go's
        rest_client_requests_total). The transport's one re-send after a 401 with refreshed credentials is
        part of the same round trip. No HTTP answer, or one that is not a JSON object, records code None
        ("error"); a cancelled call records nothing: nobody waited for its answer.
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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
        accept: str | None = None,
    ) -> Response:
        return await call_with_retries(
            self.retry if retry else NO_RETRY,
            lambda: self._request(method, path, body=body, params=params, accept=accept),
        )

    def _error(self, exc: KubeError, action: str) -> BrokerError:
        return to_broker_error(exc, action=action, cluster=self.name)

    # -- service accounts ---------------------------------------------------------------------------------------
    def forget_service_account(self, namespace: str, name: str) -> None:
        """Drop a cached ServiceAccountRef (it was deleted or re-created: its uid changed)."""
        self._sa_cache.pop((namespace, name), None)

    def _remember(self, ref: ServiceAccountRef) -> None:
        key = (ref.namespace, ref.name)
        self._sa_cache[key] = ref
        self._sa_cache.move_to_end(key)
        while len(self._sa_cache) > self._sa_cache_size:
            self._sa_cache.popitem(last=False)

    async def ensure_service_account(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        create: bool = True,
    ) -> ServiceAccountRef:
        """Get the ServiceAccount, creating it when missing and `create` is set; cached once seen.

        Concurrent calls for the same account share one GET (and at most one POST). 409 AlreadyExists on
        create (another replica won the race) is success. Missing with create=False → 502 (the role names an
        account that does not exist). Namespace missing on create → 422. Labels and annotations apply only
        to a newly created account. New accounts get automountServiceAccountToken: false: their tokens are
        for callers outside the cluster, not for pods.
        """
        cached = self._sa_cache.get((namespace, name))
        if cached is not None:
            self._sa_cache.move_to_end((namespace, name))
            return cached
        _check_namespace(namespace)
        _check_name("service account", name)
        ref = await self._sa_flight.do(
            (namespace, name, create),
            lambda: self._ensure_service_account(namespace, name, labels or {}, annotations or {}, create),
        )
        self._remember(ref)
        return ref

    async def _ensure_service_account(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        create: bool,
    ) -> ServiceAccountRef:
        collection = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        action = f'look up service account "{namespace}/{name}"'
        try:
            return self._sa_ref((await self._call("GET", f"{collection}/{name}")).body, namespace, name)
        except KubeApiError as exc:
            if exc.status != 404:
                raise self._error(exc, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None
        if not create:
            raise upstream_refused(
                f'service account "{namespace}/{name}" does not exist (cluster {self.name})',
                reason="the role names an existing service account, and it is missing",
            )
        action = f'create service account "{namespace}/{name}"'
        body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)},
            "automountServiceAccountToken": False,
        }
        try:
            return self._sa_ref((await self._call("POST", collection, body=body)).body, namespace, name)
        except KubeApiError as exc:
            if exc.status == 404:
                # the namespace itself is missing: `namespaces "x" not found`
                raise unprocessable(f'namespace "{namespace}" does not exist') from None
            if exc.status != 409:
                raise self._error(exc, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None
        # AlreadyExists: someone else (or our own timed-out first attempt) created it
        try:
            return self._sa_ref((await self._call("GET", f"{collection}/{name}")).body, namespace, name)
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, action) from None

    def _sa_ref(self, body: Mapping[str, Any], namespace: str, name: str) -> ServiceAccountRef:
        uid = _meta(body).get("uid")
        if not isinstance(uid, str) or not uid:
            raise upstream_refused(
                f'the API server returned service account "{namespace}/{name}" without a uid'
            )
        return ServiceAccountRef(namespace, name, uid)

    # -- binding Secrets ------------------------------------------------------------------------------------
    async def create_binding_secret(
        self,
        namespace: str,
        *,
        service_account: str,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        generate_name: str = "token-broker-",
    ) -> SecretRef:
        """Create an empty Opaque Secret a token will be bound to; deleting it revokes the token.

        The name is `generate_name` + 10 random characters chosen here rather than by the server's
        generateName, so a retry after a lost answer gets 409 AlreadyExists and then reads the Secret
        it already made instead of creating a second one. Namespace missing → 422.
        """
        _check_namespace(namespace)
        name = _random_name(generate_name)
        _check_name("secret", name)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "labels": dict(labels or {}),
                "annotations": {**(annotations or {}), BINDING_SA_ANNOTATION: service_account},
            },
        }
        resp = await self._create_secret_named(
            namespace, name, body, f'create a binding secret in namespace "{namespace}"'
        )
        meta = _meta(resp.body)
        uid = meta.get("uid")
        if not isinstance(uid, str) or not uid:
            raise upstream_refused(f'the API server returned secret "{namespace}/{name}" without a uid')
        if (meta.get("annotations") or {}).get(BINDING_SA_ANNOTATION) != service_account:
            # a 409 on retry led to a Secret that is not ours (a name collision): refuse to bind to it
            raise upstream_refused(
                f'secret "{namespace}/{name}" already exists and was not made by the broker'
            )
        return SecretRef(namespace, name, uid)

    async def delete_secret(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a Secret (with a uid precondition when given). True when this call deleted it.

        404 → False (already gone; also what a retry sees after a first attempt whose answer was lost).
        409 with a uid → False (the name now belongs to another Secret; ours is gone and that one stays).
        """
        _check_namespace(namespace)
        _check_name("secret", name)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._call("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}", body=body)
        except KubeApiError as exc:
            if exc.status == 404 or (exc.status == 409 and uid):
                return False
            raise self._error(exc, f'delete secret "{namespace}/{name}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'delete secret "{namespace}/{name}"') from None
        return True

    # -- TokenRequest ---------------------------------------------------------------------------------------
    async def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound_secret: SecretRef | None = None,
    ) -> TokenResponse:
        """POST serviceaccounts/{name}/token. Empty `audiences` → the server's API audiences.

        404 → 502 (the service account, or the bound Secret, is gone; the cached account is forgotten so the
        next ensure_service_account re-creates it). 409 → 502 (the bound Secret's uid changed).
        422 → 422 with the server's message (e.g. expirationSeconds below 600). 400 → 502.
        """
        _check_namespace(namespace)
        _check_name("service account", service_account)
        spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": int(expiration_seconds)}
        if bound_secret is not None:
            if bound_secret.namespace != namespace:
                raise ValueError("a token can only be bound to a Secret in its own namespace")
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": bound_secret.name,
                "uid": bound_secret.uid,
            }
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        action = f'request a token for service account "{namespace}/{service_account}"'
        try:
            resp = await self._call("POST", path, body=body)
        except KubeApiError as exc:
            raise self._token_request_error(exc, namespace, service_account, bound_secret, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None
        status = resp.body.get("status") or {}
        token = status.get("token") if isinstance(status, dict) else None
        expires = _parse_time(status.get("expirationTimestamp")) if isinstance(status, dict) else None
        if not isinstance(token, str) or not token or expires is None:
            raise upstream_refused(f"cannot {action}: the API server's answer holds no token or expiry")
        granted = (resp.body.get("spec") or {}).get("expirationSeconds")
        if not isinstance(granted, int) or isinstance(granted, bool) or granted <= 0:
            granted = int(expiration_seconds)
        return TokenResponse(
            token=token,
            expiration_timestamp=expires,
            expiration_seconds=granted,
            warnings=parse_warnings(resp.headers.getall("Warning", [])),
        )

    def _token_request_error(
        self,
        exc: KubeApiError,
        namespace: str,
        service_account: str,
        bound_secret: SecretRef | None,
        action: str,
    ) -> BrokerError:
        if exc.status == 404:
            if exc.details_kind == "secrets" and bound_secret is not None:
                return upstream_refused(
                    f"cannot {action}: the binding secret {bound_secret.name!r} is gone", reason=str(exc)
                )
            self.forget_service_account(namespace, service_account)
            return upstream_refused(
                f'cannot {action}: service account "{namespace}/{service_account}" does not exist '
                f"(cluster {self.name})",
                reason=str(exc),
            )
        if exc.status == 409:
            return upstream_refused(
                f"cannot {action}: the binding secret changed: {exc.message}", reason=str(exc)
            )
        if exc.status == 422:
            # the lifetime asked for is out of the server's range (below 10 minutes, above 2^32 s)
            kind = (
                ErrorKind.TTL if "spec.expirationSeconds" in exc.invalid_fields else ErrorKind.INVALID_REQUEST
            )
            return unprocessable(f"the API server refused the token request: {exc.message}", kind=kind)
        return self._error(exc, action)

    # -- legacy Secret tokens -----------------------------------------------------------------------------------
    async def legacy_secret_token(
        self,
        namespace: str,
        service_account: str,
        *,
        wait_timeout: float,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> LegacyToken:
        """A long-lived token from a `kubernetes.io/service-account-token` Secret the broker made.

        Reuses a valid one the broker labelled earlier (token-broker.io/legacy-token-for), else creates one
        (the service account must exist first: the token controller deletes token Secrets of missing
        accounts), then polls until the token controller fills data.token. Secrets made by others are not
        reused: revoking deletes the Secret, and the broker deletes only what it made. Not filled within
        `wait_timeout` → 503 (the Secret stays and is picked up by the next call). The Secret disappearing
        while waiting → 502. Namespace missing → 422.
        """
        _check_namespace(namespace)
        _check_name("service account", service_account)
        return await self._legacy_flight.do(
            (namespace, service_account),
            lambda: self._legacy_secret_token(namespace, service_account, wait_timeout, labels, annotations),
        )

    async def _legacy_secret_token(
        self,
        namespace: str,
        service_account: str,
        wait_timeout: float,
        labels: Mapping[str, str] | None,
        annotations: Mapping[str, str] | None,
    ) -> LegacyToken:
        deadline = time.monotonic() + wait_timeout
        collection = f"/api/v1/namespaces/{namespace}/secrets"
        action = f'get a legacy token for service account "{namespace}/{service_account}"'
        label_value = _legacy_label_value(service_account)
        try:
            listed = await self._call(
                "GET", collection, params={"labelSelector": f"{LEGACY_FOR_LABEL}={label_value}"}
            )
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, action) from None
        items = listed.body.get("items")
        candidates = [
            item
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
            and item.get("type") == SA_TOKEN_TYPE
            and (_meta(item).get("annotations") or {}).get(SA_NAME_ANNOTATION) == service_account
            and not (_meta(item).get("labels") or {}).get(LEGACY_INVALID_LABEL)
            and not _meta(item).get("deletionTimestamp")
        ]
        # oldest first: every replica and every call converges on the same Secret
        candidates.sort(
            key=lambda item: (str(_meta(item).get("creationTimestamp", "")), str(_meta(item).get("name")))
        )
        for item in candidates:
            legacy = self._legacy_from(item, namespace)
            if legacy is not None:
                return legacy
        if candidates:
            name = str(_meta(candidates[0]).get("name"))
        else:
            name = await self._create_legacy_secret(
                namespace, service_account, label_value, labels, annotations
            )
        return await self._wait_for_token(namespace, name, deadline, wait_timeout, action)

    async def _create_legacy_secret(
        self,
        namespace: str,
        service_account: str,
        label_value: str,
        labels: Mapping[str, str] | None,
        annotations: Mapping[str, str] | None,
    ) -> str:
        prefix = (service_account[:200] + "-token-").replace("..", ".")
        name = _random_name(prefix)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SA_TOKEN_TYPE,
            "metadata": {
                "name": name,
                "labels": {**(labels or {}), LEGACY_FOR_LABEL: label_value},
                "annotations": {**(annotations or {}), SA_NAME_ANNOTATION: service_account},
            },
        }
        await self._create_secret_named(
            namespace,
            name,
            body,
            f'create a legacy token secret for service account "{namespace}/{service_account}"',
        )
        return name

    async def _create_secret_named(
        self, namespace: str, name: str, body: Mapping[str, Any], action: str
    ) -> Response:
        """POST a Secret whose name the client chose, retried safely: a retry after a lost answer gets 409
        AlreadyExists and then reads the Secret the first attempt made. Callers check it is theirs."""
        collection = f"/api/v1/namespaces/{namespace}/secrets"
        tries = 0

        async def attempt() -> Response:
            nonlocal tries
            tries += 1
            try:
                return await self._request("POST", collection, body=body)
            except KubeApiError as exc:
                if exc.status == 409 and exc.reason == "AlreadyExists" and tries > 1:
                    return await self._request("GET", f"{collection}/{name}")
                raise

        try:
            return await call_with_retries(self.retry, attempt)
        except KubeApiError as exc:
            if exc.status == 404:
                raise unprocessable(f'namespace "{namespace}" does not exist') from None
            raise self._error(exc, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None

    async def _wait_for_token(
        self, namespace: str, name: str, deadline: float, wait_timeout: float, action: str
    ) -> LegacyToken:
        # the token controller fills the Secret asynchronously; poll with a short, growing pause
        pause = 0.02
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        while True:
            try:
                resp = await self._call("GET", path)
            except KubeApiError as exc:
                if exc.status == 404:
                    raise upstream_refused(
                        f"cannot {action}: the token controller deleted secret {name!r} "
                        "(does the service account exist?)",
                        reason=str(exc),
                    ) from None
                raise self._error(exc, action) from None
            except KubeTransportError as exc:
                raise self._error(exc, action) from None
            legacy = self._legacy_from(resp.body, namespace)
            if legacy is not None:
                return legacy
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise unavailable(
                    f"cannot {action}: the token controller did not fill secret {name!r} within {wait_timeout:g} s",
                    retry_after=DEFAULT_RETRY_AFTER,
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)

    @staticmethod
    def _legacy_from(secret: Mapping[str, Any], namespace: str) -> LegacyToken | None:
        data = secret.get("data")
        encoded = data.get("token") if isinstance(data, dict) else None
        if not isinstance(encoded, str) or not encoded:
            return None
        try:
            token = base64.b64decode(encoded, validate=True).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None
        meta = _meta(secret)
        return LegacyToken(
            token=token,
            namespace=namespace,
            secret_name=str(meta.get("name", "")),
            secret_uid=str(meta.get("uid", "")),
            service_account_uid=str((meta.get("annotations") or {}).get(SA_UID_ANNOTATION, "")),
        )

    # -- namespaces, readiness, discovery --------------------------------------------------------------------
    async def namespace_labels(self, namespace: str) -> dict[str, str]:
        """Labels of a namespace (for namespace selectors). Missing namespace → 422."""
        _check_namespace(namespace)
        try:
            resp = await self._call("GET", f"/api/v1/namespaces/{namespace}")
        except KubeApiError as exc:
            if exc.status == 404:
                raise unprocessable(f'namespace "{namespace}" does not exist') from None
            raise self._error(exc, f'read namespace "{namespace}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'read namespace "{namespace}"') from None
        labels = _meta(resp.body).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    async def ping(self) -> None:
        """One GET /version, no retries (readiness wants a quick answer). Failure → BrokerError (503/502)."""
        try:
            await self._call("GET", "/version", retry=False)
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, "reach the Kubernetes API server") from None

    async def discover_issuer(self) -> tuple[str, str]:
        """(issuer, jwks_uri) from /.well-known/openid-configuration."""
        action = "discover the service-account token issuer"
        try:
            resp = await self._call("GET", "/.well-known/openid-configuration")
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, action) from None
        issuer = resp.body.get("issuer")
        jwks_uri = resp.body.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not jwks_uri:
            raise upstream_refused(f"cannot {action}: the discovery document lacks issuer or jwks_uri")
        return issuer, jwks_uri

    def _jwks_path(self, uri: str) -> str:
        """A server path for `uri`. A jwks_uri on another origin (an external issuer) becomes the API server's
        own /openid/v1/jwks, which serves the same keys: the broker's credentials never leave for another host."""
        if uri.startswith("/"):
            return uri
        target, server = urlsplit(uri), urlsplit(self.server_url)
        if (target.scheme, target.netloc) == (server.scheme, server.netloc):
            base = server.path.rstrip("/")
            path = target.path
            if base and path.startswith(base):
                path = path[len(base) :]
            return (path or JWKS_PATH) + (f"?{target.query}" if target.query else "")
        return JWKS_PATH

    async def fetch_jwks(self, uri: str = JWKS_PATH) -> dict[str, Any]:
        """The JSON Web Key Set, through the same authenticated session."""
        return (await self.fetch_jwks_with_max_age(uri))[0]

    async def fetch_jwks_with_max_age(self, uri: str = JWKS_PATH) -> tuple[dict[str, Any], float | None]:
        """The JWKS and the Cache-Control max-age it came with (None when the server sent none)."""
        action = "fetch the cluster's token signing keys"
        try:
            # the API server serves the key set as application/jwk-set+json only (406 to application/json)
            resp = await self._call("GET", self._jwks_path(uri), accept=JWKS_ACCEPT)
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, action) from None
        if not isinstance(resp.body.get("keys"), list):
            raise upstream_refused(f"cannot {action}: the answer is not a JSON Web Key Set")
        return resp.body, parse_max_age(resp.headers.get("Cache-Control"))

    # -- clean-up: Secrets by label, service accounts (the janitor) -------------------------------------------
    async def delete_secrets_labelled(self, namespace: str, label_selector: str) -> int:
        """Delete every Secret in `namespace` matching `label_selector`, each with its uid as precondition
        (a Secret re-created under the same name meanwhile is not ours to delete). Returns how many this call
        deleted; 0 when none matched or all were already gone. Failures → BrokerError (nothing is hidden: a
        caller that must be sure they are gone retries later)."""
        _check_namespace(namespace)
        action = f'list secrets in namespace "{namespace}"'
        try:
            listed = await self._call(
                "GET", f"/api/v1/namespaces/{namespace}/secrets", params={"labelSelector": label_selector}
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return 0  # the namespace is gone, and its Secrets with it
            raise self._error(exc, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None
        items = listed.body.get("items")
        deleted = 0
        for item in items if isinstance(items, list) else []:
            meta = _meta(item) if isinstance(item, dict) else {}
            name, uid = meta.get("name"), meta.get("uid")
            if (
                isinstance(name, str)
                and name
                and await self.delete_secret(namespace, name, uid=uid if isinstance(uid, str) else None)
            ):
                deleted += 1
        return deleted

    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ServiceAccount object as JSON, or None when it does not exist."""
        _check_namespace(namespace)
        _check_name("service account", name)
        try:
            return (await self._call("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")).body
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f'read service account "{namespace}/{name}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'read service account "{namespace}/{name}"') from None

    async def delete_service_account(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a ServiceAccount (uid precondition when given); True when this call deleted it.

        404 → False (already gone); 409 with a uid → False (the name now belongs to another account). Every
        token of the account stops working: the API server checks the account's name and uid on each request.
        The cached reference is dropped either way, so the next issuance re-creates the account.
        """
        _check_namespace(namespace)
        _check_name("service account", name)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        action = f'delete service account "{namespace}/{name}"'
        try:
            await self._call("DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", body=body)
        except KubeApiError as exc:
            if exc.status == 404 or (exc.status == 409 and uid):
                return False
            raise self._error(exc, action) from None
        except KubeTransportError as exc:
            raise self._error(exc, action) from None
        finally:
            self.forget_service_account(namespace, name)
        return True

    # -- coordination.k8s.io Leases (leader election) ----------------------------------------------------------
    # Never retried here: the elector's loop is the retry, and a blind repeat of a write whose answer was lost
    # would meet its own new resourceVersion as a 409 and report a race that did not happen.
    @staticmethod
    def _leases(namespace: str) -> str:
        _check_namespace(namespace)
        return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as JSON, or None when it does not exist. One attempt, within the request timeout."""
        _check_name("lease", name)
        path = f"{self._leases(namespace)}/{name}"
        try:
            return (await self._call("GET", path, retry=False)).body
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f'read lease "{namespace}/{name}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'read lease "{namespace}/{name}"') from None

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new Lease. 409 AlreadyExists (another replica created it first) → LeaseConflict."""
        name = str(_meta(body).get("name", ""))
        _check_name("lease", name)
        try:
            return (await self._call("POST", self._leases(namespace), body=body, retry=False)).body
        except KubeApiError as exc:
            if exc.status == 409:
                raise LeaseConflict(namespace, name, exc.message) from None
            raise self._error(exc, f'create lease "{namespace}/{name}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'create lease "{namespace}/{name}"') from None

    async def update_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT the Lease. `body.metadata.resourceVersion` is required: the write succeeds only if nobody
        changed the Lease since it was read (optimistic concurrency); otherwise 409 → LeaseConflict."""
        _check_name("lease", name)
        if not _meta(body).get("resourceVersion"):
            raise ValueError("a lease update must carry metadata.resourceVersion (optimistic concurrency)")
        path = f"{self._leases(namespace)}/{name}"
        try:
            return (await self._call("PUT", path, body=body, retry=False)).body
        except KubeApiError as exc:
            if exc.status == 409:
                raise LeaseConflict(namespace, name, exc.message) from None
            raise self._error(exc, f'update lease "{namespace}/{name}"') from None
        except KubeTransportError as exc:
            raise self._error(exc, f'update lease "{namespace}/{name}"') from None

    # -- generic reads (tests, diagnostics) ------------------------------------------------------------------
    async def get_json(self, path: str) -> dict[str, Any]:
        """GET any server path as JSON (retried); failures mapped like every other call."""
        try:
            return (await self._call("GET", path)).body
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, f"read {path}") from None

    async def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON body once (not retried: the caller knows whether it is safe to repeat)."""
        try:
            return (await self._call("POST", path, body=body, retry=False)).body
        except (KubeApiError, KubeTransportError) as exc:
            raise self._error(exc, f"post to {path}") from None
