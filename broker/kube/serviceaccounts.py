"""ServiceAccounts: got or created on demand (and remembered), read and deleted by the janitor."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from broker._kits.singleflight import SingleFlight
from broker.domain.errors import upstream_refused

from .api import KubeApi
from .errors import KubeApiError
from .objects import ServiceAccountRef, check_name, check_namespace, delete_options, meta, namespace_missing


def _path(namespace: str, name: str = "") -> str:
    collection = f"/api/v1/namespaces/{check_namespace(namespace)}/serviceaccounts"
    return f"{collection}/{check_name('service account', name)}" if name else collection


class ServiceAccounts:
    """Get-or-create with a bounded cache of the accounts seen (their uid does not change while they live)."""

    def __init__(self, api: KubeApi, *, cache_size: int = 4096) -> None:
        self._api = api
        self._cache: OrderedDict[tuple[str, str], ServiceAccountRef] = OrderedDict()
        self._cache_size = cache_size
        self._flight: SingleFlight[tuple[str, str, bool], ServiceAccountRef] = SingleFlight()

    def forget(self, namespace: str, name: str) -> None:
        """Drop a cached ServiceAccountRef (it was deleted or re-created: its uid changed)."""
        self._cache.pop((namespace, name), None)

    def _remember(self, ref: ServiceAccountRef) -> None:
        key = (ref.namespace, ref.name)
        self._cache[key] = ref
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def ensure(
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
        cached = self._cache.get((namespace, name))
        if cached is not None:
            self._cache.move_to_end((namespace, name))
            return cached
        _path(namespace, name)
        ref = await self._flight.do(
            (namespace, name, create),
            lambda: self._get_or_create(namespace, name, labels or {}, annotations or {}, create),
        )
        self._remember(ref)
        return ref

    async def _get_or_create(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        create: bool,
    ) -> ServiceAccountRef:
        found = await self._read(namespace, name, f'look up service account "{namespace}/{name}"')
        if found is not None:
            return found
        if not create:
            raise upstream_refused(
                f'service account "{namespace}/{name}" does not exist (cluster {self._api.name})',
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
            created = await self._api.call(
                "POST", _path(namespace), action=action, body=body, expect=(404, 409)
            )
        except KubeApiError as exc:
            if exc.status == 404:
                # the namespace itself is missing: `namespaces "x" not found`
                raise namespace_missing(namespace) from None
            # AlreadyExists: someone else (or our own timed-out first attempt) created it
            return self._ref(
                (await self._api.call("GET", _path(namespace, name), action=action)).body, namespace, name
            )
        return self._ref(created.body, namespace, name)

    async def _read(self, namespace: str, name: str, action: str) -> ServiceAccountRef | None:
        try:
            resp = await self._api.call("GET", _path(namespace, name), action=action, expect=(404,))
        except KubeApiError:
            return None
        return self._ref(resp.body, namespace, name)

    def _ref(self, body: Mapping[str, Any], namespace: str, name: str) -> ServiceAccountRef:
        uid = meta(body).get("uid")
        if not isinstance(uid, str) or not uid:
            raise upstream_refused(
                f'the API server returned service account "{namespace}/{name}" without a uid'
            )
        return ServiceAccountRef(namespace, name, uid)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ServiceAccount object as JSON, or None when it does not exist."""
        action = f'read service account "{namespace}/{name}"'
        try:
            return (await self._api.call("GET", _path(namespace, name), action=action, expect=(404,))).body
        except KubeApiError:
            return None

    async def delete(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a ServiceAccount (uid precondition when given); True when this call deleted it.

        404 → False (already gone); 409 with a uid → False (the name now belongs to another account). Every
        token of the account stops working: the API server checks the account's name and uid on each request.
        The cached reference is dropped either way, so the next issuance re-creates the account.
        """
        action = f'delete service account "{namespace}/{name}"'
        try:
            await self._api.call(
                "DELETE", _path(namespace, name), action=action, body=delete_options(uid), expect=(404, 409)
            )
        except KubeApiError as exc:
            if exc.status == 409 and not uid:
                raise self._api.failure(exc, action) from None
            return False
        finally:
            self.forget(namespace, name)
        return True
