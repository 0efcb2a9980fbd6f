"""Secrets the broker makes and deletes: the empty Secret a revocable token is bound to (deleting it revokes
the token), Secrets found by label (start-up repair), and the named create both those and legacy token
Secrets go through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.domain.errors import upstream_refused

from .api import KubeApi
from .errors import KubeApiError, KubeTransportError
from .labels import BINDING_SA_ANNOTATION
from .objects import (
    SecretRef,
    check_name,
    check_namespace,
    delete_options,
    meta,
    namespace_missing,
    random_name,
)
from .retry import call_with_retries
from .transport import Response


def secrets_path(namespace: str, name: str = "") -> str:
    collection = f"/api/v1/namespaces/{check_namespace(namespace)}/secrets"
    return f"{collection}/{check_name('secret', name)}" if name else collection


class Secrets:
    def __init__(self, api: KubeApi) -> None:
        self._api = api

    async def create_binding(
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
        check_namespace(namespace)
        name = check_name("secret", random_name(generate_name))
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
        resp = await self.create_named(
            namespace, name, body, f'create a binding secret in namespace "{namespace}"'
        )
        found = meta(resp.body)
        uid = found.get("uid")
        if not isinstance(uid, str) or not uid:
            raise upstream_refused(f'the API server returned secret "{namespace}/{name}" without a uid')
        if (found.get("annotations") or {}).get(BINDING_SA_ANNOTATION) != service_account:
            # a 409 on retry led to a Secret that is not ours (a name collision): refuse to bind to it
            raise upstream_refused(
                f'secret "{namespace}/{name}" already exists and was not made by the broker'
            )
        return SecretRef(namespace, name, uid)

    async def create_named(self, namespace: str, name: str, body: Mapping[str, Any], action: str) -> Response:
        """POST a Secret whose name the client chose, retried safely: a retry after a lost answer gets 409
        AlreadyExists and then reads the Secret the first attempt made. Callers check it is theirs."""
        tries = 0

        async def attempt() -> Response:
            nonlocal tries
            tries += 1
            try:
                return await self._api.request("POST", secrets_path(namespace), body=body)
            except KubeApiError as exc:
                if exc.status == 409 and exc.reason == "AlreadyExists" and tries > 1:
                    return await self._api.request("GET", secrets_path(namespace, name))
                raise

        try:
            return await call_with_retries(self._api.retry, attempt)
        except KubeApiError as exc:
            if exc.status == 404:
                raise namespace_missing(namespace) from None
            raise self._api.failure(exc, action) from None
        except KubeTransportError as exc:
            raise self._api.failure(exc, action) from None

    async def delete(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a Secret (with a uid precondition when given). True when this call deleted it.

        404 → False (already gone; also what a retry sees after a first attempt whose answer was lost).
        409 with a uid → False (the name now belongs to another Secret; ours is gone and that one stays).
        """
        action = f'delete secret "{namespace}/{name}"'
        try:
            await self._api.call(
                "DELETE",
                secrets_path(namespace, name),
                action=action,
                body=delete_options(uid),
                expect=(404, 409),
            )
        except KubeApiError as exc:
            if exc.status == 409 and not uid:
                raise self._api.failure(exc, action) from None
            return False
        return True

    async def delete_labelled(self, namespace: str, label_selector: str) -> int:
        """Delete every Secret in `namespace` matching `label_selector`, each with its uid as precondition
        (a Secret re-created under the same name meanwhile is not ours to delete). Returns how many this call
        deleted; 0 when none matched or all were already gone. Failures → BrokerError (nothing is hidden: a
        caller that must be sure they are gone retries later)."""
        action = f'list secrets in namespace "{namespace}"'
        try:
            listed = await self._api.call(
                "GET",
                secrets_path(namespace),
                action=action,
                params={"labelSelector": label_selector},
                expect=(404,),
            )
        except KubeApiError:
            return 0  # the namespace is gone, and its Secrets with it
        items = listed.body.get("items")
        deleted = 0
        for item in items if isinstance(items, list) else []:
            found = meta(item) if isinstance(item, dict) else {}
            name, uid = found.get("name"), found.get("uid")
            if (
                isinstance(name, str)
                and name
                and await self.delete(namespace, name, uid=uid if isinstance(uid, str) else None)
            ):
                deleted += 1
        return deleted
