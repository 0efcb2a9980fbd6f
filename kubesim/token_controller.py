"""The legacy token controller (pkg/controller/serviceaccount/tokens_controller.go).

A `kubernetes.io/service-account-token` Secret gets data.token (a legacy JWT), data["ca.crt"],
data.namespace and the `kubernetes.io/service-account.uid` annotation, asynchronously after
`legacy_token_delay`, so clients have to poll or watch as they do against a real cluster. A token Secret
whose service account is missing (or has another uid) is deleted; deleting a service account deletes its
token Secrets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable

from . import sa_claims
from .context import SimContext
from .kinds import SECRETS, SERVICEACCOUNTS
from .state import EventType, Obj, ResourceType
from .status import ApiError

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_token_secret(obj: Obj) -> bool:
    return obj.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE


def _annotations(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


class TokenController:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._pending: dict[tuple[str, str, str], asyncio.TimerHandle | asyncio.Handle] = {}
        self._stopped = False

    # -- store events ---------------------------------------------------------------------------------------
    def on_event(self, event: EventType, rtype: ResourceType, obj: Obj) -> None:
        if self._stopped:
            return
        if rtype.key == SECRETS.key and event in ("ADDED", "MODIFIED") and _is_token_secret(obj):
            if self._needs_work(obj):
                self._schedule_secret(obj)
        elif rtype.key == SERVICEACCOUNTS.key and event == "DELETED":
            self._schedule(
                ("sa", obj["metadata"].get("namespace", ""), obj["metadata"]["name"]),
                0.0,
                lambda: self._delete_tokens_of(obj),
            )

    def _needs_work(self, secret: Obj) -> bool:
        data = secret.get("data") or {}
        ca = _b64(self._ctx.ca.cert_pem)
        return not data.get("token") or not data.get("namespace") or data.get("ca.crt") != ca

    def _schedule_secret(self, secret: Obj) -> None:
        meta = secret["metadata"]
        key = ("secret", meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid", "")
        self._schedule(
            key, self._ctx.options.legacy_token_delay, lambda: self.sync_secret(key[1], key[2], uid)
        )

    def _schedule(self, key: tuple[str, str, str], delay: float, action: Callable[[], None]) -> None:
        if key in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            action()  # no event loop (a store driven directly, e.g. in unit tests): act at once
            return

        def run() -> None:
            self._pending.pop(key, None)
            if not self._stopped:
                action()

        self._pending[key] = loop.call_later(delay, run) if delay > 0 else loop.call_soon(run)

    # -- reconciliation ---------------------------------------------------------------------------------------
    def sync_secret(self, namespace: str, name: str, uid: str = "") -> None:
        """syncSecret: delete the token Secret if its service account is gone, else fill what is missing."""
        store = self._ctx.store
        secret = store.try_get(SECRETS, namespace, name)
        if secret is None or not _is_token_secret(secret) or (uid and secret["metadata"].get("uid") != uid):
            return
        annotations = _annotations(secret)
        sa_name = annotations.get(SA_NAME_ANNOTATION, "")
        sa_uid = annotations.get(SA_UID_ANNOTATION, "")
        service_account = store.try_get(SERVICEACCOUNTS, namespace, sa_name) if sa_name else None
        if service_account is not None and sa_uid and service_account["metadata"].get("uid") != sa_uid:
            service_account = None
        try:
            if service_account is None:
                log.info(
                    "deleting token secret %s/%s: service account %r not found", namespace, name, sa_name
                )
                store.delete(SECRETS, namespace, name, uid=secret["metadata"].get("uid"))
                return
            self._fill(secret, service_account)
        except ApiError as exc:  # the object changed under us; the next event brings us back
            log.info("token controller: %s/%s: %s", namespace, name, exc)

    def _fill(self, secret: Obj, service_account: Obj) -> None:
        """generateTokenIfNeeded: ca.crt and namespace are (re)set, a token only when there is none."""
        if not self._needs_work(secret):
            return
        meta = secret["metadata"]
        data = dict(secret.get("data") or {})
        data["ca.crt"] = _b64(self._ctx.ca.cert_pem)
        if not data.get("namespace"):
            data["namespace"] = _b64(meta["namespace"].encode("utf-8"))
        if not data.get("token"):
            claims = sa_claims.legacy_claims(service_account, meta["name"])
            data["token"] = _b64(self._ctx.keys.sign(claims).encode("ascii"))
        secret["data"] = data
        annotations = dict(_annotations(secret))
        annotations[SA_NAME_ANNOTATION] = service_account["metadata"]["name"]
        annotations[SA_UID_ANNOTATION] = service_account["metadata"]["uid"]
        meta["annotations"] = annotations
        self._ctx.store.update(SECRETS, meta["namespace"], secret)

    def _delete_tokens_of(self, service_account: Obj) -> None:
        """deleteTokens: every token Secret naming this account (and, when recorded, its uid)."""
        meta = service_account["metadata"]
        namespace = meta.get("namespace", "")
        for secret in self._ctx.store.list(SECRETS, namespace):
            annotations = _annotations(secret)
            if not _is_token_secret(secret) or annotations.get(SA_NAME_ANNOTATION) != meta["name"]:
                continue
            recorded_uid = annotations.get(SA_UID_ANNOTATION, "")
            if recorded_uid and recorded_uid != meta.get("uid"):
                continue
            with contextlib.suppress(ApiError):  # already gone
                self._ctx.store.delete(
                    SECRETS, namespace, secret["metadata"]["name"], uid=secret["metadata"]["uid"]
                )

    def stop(self) -> None:
        self._stopped = True
        self._ctx.store.remove_listener(self.on_event)
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()


def install(ctx: SimContext) -> TokenController:
    controller = TokenController(ctx)
    ctx.store.add_listener(controller.on_event)
    return controller
