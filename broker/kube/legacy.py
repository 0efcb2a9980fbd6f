"""Legacy service-account token Secrets (`kubernetes.io/service-account-token`), for roles that ask for a token
that does not expire: made once by the broker, filled by the token controller, reused while valid."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any

from broker._kits.singleflight import SingleFlight
from broker.domain.errors import unavailable, upstream_refused

from .api import KubeApi
from .errors import DEFAULT_RETRY_AFTER, KubeApiError
from .labels import (
    LEGACY_FOR_LABEL,
    LEGACY_INVALID_LABEL,
    SA_NAME_ANNOTATION,
    SA_TOKEN_TYPE,
    SA_UID_ANNOTATION,
)
from .objects import LegacyToken, check_name, check_namespace, meta, random_name
from .secrets import Secrets, secrets_path

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def legacy_label_value(service_account: str) -> str:
    if len(service_account) <= 63 and _LABEL_VALUE.match(service_account):
        return service_account
    # a label value holds at most 63 characters; the annotation check below still compares the full name
    return "sha256-" + hashlib.sha256(service_account.encode()).hexdigest()[:40]


def _usable(item: Any, service_account: str) -> bool:
    """A token Secret of this account that the broker made, not invalidated, not being deleted."""
    if not isinstance(item, dict) or item.get("type") != SA_TOKEN_TYPE:
        return False
    found = meta(item)
    return (
        (found.get("annotations") or {}).get(SA_NAME_ANNOTATION) == service_account
        and not (found.get("labels") or {}).get(LEGACY_INVALID_LABEL)
        and not found.get("deletionTimestamp")
    )


def _token_of(secret: Mapping[str, Any], namespace: str) -> LegacyToken | None:
    data = secret.get("data")
    encoded = data.get("token") if isinstance(data, dict) else None
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        token = base64.b64decode(encoded, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    found = meta(secret)
    return LegacyToken(
        token=token,
        namespace=namespace,
        secret_name=str(found.get("name", "")),
        secret_uid=str(found.get("uid", "")),
        service_account_uid=str((found.get("annotations") or {}).get(SA_UID_ANNOTATION, "")),
    )


class LegacyTokens:
    def __init__(self, api: KubeApi, secrets: Secrets) -> None:
        self._api = api
        self._secrets = secrets
        self._flight: SingleFlight[tuple[str, str], LegacyToken] = SingleFlight()

    async def token(
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
        check_namespace(namespace)
        check_name("service account", service_account)
        return await self._flight.do(
            (namespace, service_account),
            lambda: self._token(namespace, service_account, wait_timeout, labels or {}, annotations or {}),
        )

    async def _token(
        self,
        namespace: str,
        service_account: str,
        wait_timeout: float,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> LegacyToken:
        deadline = time.monotonic() + wait_timeout
        action = f'get a legacy token for service account "{namespace}/{service_account}"'
        label_value = legacy_label_value(service_account)
        listed = await self._api.call(
            "GET",
            secrets_path(namespace),
            action=action,
            params={"labelSelector": f"{LEGACY_FOR_LABEL}={label_value}"},
        )
        items = listed.body.get("items")
        candidates = [
            item for item in (items if isinstance(items, list) else []) if _usable(item, service_account)
        ]
        # oldest first: every replica and every call converges on the same Secret
        candidates.sort(
            key=lambda item: (str(meta(item).get("creationTimestamp", "")), str(meta(item).get("name")))
        )
        for item in candidates:
            legacy = _token_of(item, namespace)
            if legacy is not None:
                return legacy
        if candidates:
            name = str(meta(candidates[0]).get("name"))
        else:
            name = await self._create(namespace, service_account, label_value, labels, annotations)
        return await self._wait_for_token(namespace, name, deadline, wait_timeout, action)

    async def _create(
        self,
        namespace: str,
        service_account: str,
        label_value: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> str:
        prefix = (service_account[:200] + "-token-").replace("..", ".")
        name = random_name(prefix)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SA_TOKEN_TYPE,
            "metadata": {
                "name": name,
                "labels": {**labels, LEGACY_FOR_LABEL: label_value},
                "annotations": {**annotations, SA_NAME_ANNOTATION: service_account},
            },
        }
        action = f'create a legacy token secret for service account "{namespace}/{service_account}"'
        await self._secrets.create_named(namespace, name, body, action)
        return name

    async def _wait_for_token(
        self, namespace: str, name: str, deadline: float, wait_timeout: float, action: str
    ) -> LegacyToken:
        # the token controller fills the Secret asynchronously; poll with a short, growing pause
        pause = 0.02
        while True:
            try:
                resp = await self._api.call(
                    "GET", secrets_path(namespace, name), action=action, expect=(404,)
                )
            except KubeApiError as exc:
                raise upstream_refused(
                    f"cannot {action}: the token controller deleted secret {name!r} "
                    "(does the service account exist?)",
                    reason=str(exc),
                ) from None
            legacy = _token_of(resp.body, namespace)
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
