"""TokenRequest: `POST serviceaccounts/{name}/token`, optionally bound to a Secret."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any

from broker._kits.rfc3339 import parse_time
from broker.domain.errors import BrokerError, ErrorKind, unprocessable, upstream_refused

from .api import KubeApi
from .errors import KubeApiError
from .objects import SecretRef, TokenResponse, check_name, check_namespace
from .serviceaccounts import ServiceAccounts

# RFC 9111 §5.5 warning-value: warn-code SP warn-agent SP warn-text [SP warn-date]
_WARNING = re.compile(r'(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+"[^"]*")?')


def parse_warnings(values: Iterable[str]) -> tuple[str, ...]:
    """Texts of `Warning` headers, e.g. `299 - "requested expiration of 7200 seconds shortened to 3600 seconds"`."""
    out: list[str] = []
    for value in values:
        for match in _WARNING.finditer(value):
            out.append(re.sub(r"\\(.)", r"\1", match.group(3)))
    return tuple(out)


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _spec(
    audiences: Sequence[str], expiration_seconds: int, namespace: str, secret: SecretRef | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": int(expiration_seconds)}
    if secret is not None:
        if secret.namespace != namespace:
            raise ValueError("a token can only be bound to a Secret in its own namespace")
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": secret.name,
            "uid": secret.uid,
        }
    return spec


class Tokens:
    def __init__(self, api: KubeApi, accounts: ServiceAccounts) -> None:
        self._api = api
        # a 404 means the account is gone: its cached reference must go too
        self._accounts = accounts

    async def request(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound_secret: SecretRef | None = None,
    ) -> TokenResponse:
        """A token for the account. Empty `audiences` → the server's API audiences.

        404 → 502 (the service account, or the bound Secret, is gone; the cached account is forgotten so the
        next ServiceAccounts.ensure re-creates it). 409 → 502 (the bound Secret's uid changed).
        422 → 422 with the server's message (e.g. expirationSeconds below 600). 400 → 502.
        """
        check_namespace(namespace)
        check_name("service account", service_account)
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": _spec(audiences, expiration_seconds, namespace, bound_secret),
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        action = f'request a token for service account "{namespace}/{service_account}"'
        try:
            resp = await self._api.call("POST", path, action=action, body=body, expect=(404, 409, 422))
        except KubeApiError as exc:
            raise self._refused(exc, namespace, service_account, bound_secret, action) from None
        status = resp.body.get("status") or {}
        token = status.get("token") if isinstance(status, dict) else None
        expires = _time(status.get("expirationTimestamp")) if isinstance(status, dict) else None
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

    def _refused(
        self, exc: KubeApiError, namespace: str, service_account: str, secret: SecretRef | None, action: str
    ) -> BrokerError:
        if exc.status == 404:
            if exc.details_kind == "secrets" and secret is not None:
                return upstream_refused(
                    f"cannot {action}: the binding secret {secret.name!r} is gone", reason=str(exc)
                )
            self._accounts.forget(namespace, service_account)
            return upstream_refused(
                f'cannot {action}: service account "{namespace}/{service_account}" does not exist '
                f"(cluster {self._api.name})",
                reason=str(exc),
            )
        if exc.status == 409:
            return upstream_refused(
                f"cannot {action}: the binding secret changed: {exc.message}", reason=str(exc)
            )
        # the lifetime asked for is out of the server's range (below 10 minutes, above 2^32 s)
        kind = ErrorKind.TTL if "spec.expirationSeconds" in exc.invalid_fields else ErrorKind.INVALID_REQUEST
        return unprocessable(f"the API server refused the token request: {exc.message}", kind=kind)
