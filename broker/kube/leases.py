"""coordination.k8s.io Leases, for leader election.

Never retried here: the elector's loop is the retry, and a blind repeat of a write whose answer was lost
would meet its own new resourceVersion as a 409 and report a race that did not happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api import KubeApi
from .errors import KubeApiError
from .objects import check_name, check_namespace, meta


class LeaseConflict(Exception):
    """A Lease write lost a race: 409 Conflict (stale resourceVersion) or AlreadyExists on create.

    Not a BrokerError: for leader election it is an answer ("someone else wrote first"), not a failure.
    """

    def __init__(self, namespace: str, name: str, message: str) -> None:
        super().__init__(f'lease "{namespace}/{name}": {message}')
        self.namespace = namespace
        self.name = name


def _path(namespace: str, name: str = "") -> str:
    collection = f"/apis/coordination.k8s.io/v1/namespaces/{check_namespace(namespace)}/leases"
    return f"{collection}/{name}" if name else collection


class Leases:
    def __init__(self, api: KubeApi) -> None:
        self._api = api

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as JSON, or None when it does not exist. One attempt, within the request timeout."""
        check_name("lease", name)
        action = f'read lease "{namespace}/{name}"'
        try:
            return (
                await self._api.call("GET", _path(namespace, name), action=action, retry=False, expect=(404,))
            ).body
        except KubeApiError:
            return None

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new Lease. 409 AlreadyExists (another replica created it first) → LeaseConflict."""
        name = check_name("lease", str(meta(body).get("name", "")))
        return await self._write(
            "POST", namespace, name, _path(namespace), body, f'create lease "{namespace}/{name}"'
        )

    async def update(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT the Lease. `body.metadata.resourceVersion` is required: the write succeeds only if nobody
        changed the Lease since it was read (optimistic concurrency); otherwise 409 → LeaseConflict."""
        check_name("lease", name)
        if not meta(body).get("resourceVersion"):
            raise ValueError("a lease update must carry metadata.resourceVersion (optimistic concurrency)")
        path = _path(namespace, name)
        return await self._write("PUT", namespace, name, path, body, f'update lease "{namespace}/{name}"')

    async def _write(
        self, method: str, namespace: str, name: str, path: str, body: Mapping[str, Any], action: str
    ) -> dict[str, Any]:
        try:
            return (
                await self._api.call(method, path, action=action, body=body, retry=False, expect=(409,))
            ).body
        except KubeApiError as exc:
            raise LeaseConflict(namespace, name, exc.message) from None
