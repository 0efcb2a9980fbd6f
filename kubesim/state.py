"""The simulator's object store: what etcd plus the generic registry give a real API server.

Objects are plain JSON dicts. Every read hands out a deep copy so handlers can never mutate stored state by
accident. Mutations bump one global resourceVersion, as etcd's revision does.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from . import status
from .labels import parse_selector

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


Listener = Callable[[EventType, ResourceType, Obj], None]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """In-memory objects keyed by (group, plural) → (namespace or "") → name."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], dict[str, dict[str, Obj]]] = {}
        self._revision = 0
        self._listeners: list[Listener] = []

    # -- observation --------------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Called synchronously after every mutation with a copy of the object (controllers hook in here)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: EventType, rtype: ResourceType, obj: Obj) -> None:
        for listener in list(self._listeners):
            listener(event, rtype, copy.deepcopy(obj))

    @property
    def revision(self) -> int:
        return self._revision

    def _next_rv(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _bucket(self, rtype: ResourceType, namespace: str | None) -> dict[str, Obj]:
        ns = namespace if rtype.namespaced else ""
        return self._objects.setdefault(rtype.key, {}).setdefault(ns or "", {})

    # -- reads ----------------------------------------------------------------------------------------------
    def try_get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        obj = self._bucket(rtype, namespace).get(name)
        return copy.deepcopy(obj) if obj is not None else None

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.try_get(rtype, namespace, name)
        if obj is None:
            raise status.not_found(rtype.plural, name, rtype.group)
        return obj

    def list(
        self, rtype: ResourceType, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        """All objects of a type, in one namespace or (namespace None) across all, sorted by namespace/name."""
        matches = parse_selector(label_selector)
        buckets = self._objects.get(rtype.key, {})
        namespaces: Iterable[str]
        namespaces = [namespace] if rtype.namespaced and namespace is not None else sorted(buckets)
        out: list[Obj] = []
        for ns in namespaces:
            for name in sorted(buckets.get(ns, {})):
                obj = buckets[ns][name]
                if matches(obj.get("metadata", {}).get("labels") or {}):
                    out.append(copy.deepcopy(obj))
        return out

    # -- writes ---------------------------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        """Store a new object; fills uid, resourceVersion, creationTimestamp and a generateName suffix."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            # names.SimpleNameGenerator: 5 random lowercase alphanumerics
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            meta["name"] = meta["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
        name = meta["name"]
        bucket = self._bucket(rtype, namespace)
        if name in bucket:
            raise status.already_exists(rtype.plural, name, rtype.group)
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_rv()
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        bucket[name] = obj
        self._emit("ADDED", rtype, obj)
        return copy.deepcopy(obj)

    def update(self, rtype: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        """Replace an object. A non-empty metadata.resourceVersion that is stale → 409 Conflict (optimistic lock)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        bucket = self._bucket(rtype, namespace)
        current = bucket.get(name)
        if current is None:
            raise status.not_found(rtype.plural, name, rtype.group)
        asked_rv = meta.get("resourceVersion")
        if asked_rv and asked_rv != current["metadata"]["resourceVersion"]:
            raise status.conflict(rtype.plural, name, rtype.group)
        # uid and creationTimestamp are immutable; the server keeps its own
        for key in ("uid", "creationTimestamp", "namespace"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if obj == current:
            # etcd3 store GuaranteedUpdate: an unchanged object is not written, its resourceVersion stays
            return copy.deepcopy(current)
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # the generic registry deletes an object being deleted once its last finalizer is removed
            del bucket[name]
            self._emit("DELETED", rtype, obj)
            return copy.deepcopy(obj)
        bucket[name] = obj
        self._emit("MODIFIED", rtype, obj)
        return copy.deepcopy(obj)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, uid: str | None = None) -> Obj:
        """Remove an object now, finalizers or not (deletion.delete honours them). A uid precondition mismatch
        → 409."""
        bucket = self._bucket(rtype, namespace)
        current = bucket.get(name)
        if current is None:
            raise status.not_found(rtype.plural, name, rtype.group)
        if uid and current["metadata"]["uid"] != uid:
            raise status.conflict(
                rtype.plural,
                name,
                rtype.group,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {current['metadata']['uid']}",
            )
        del bucket[name]
        # a deletion is a new etcd revision; the DELETED event carries it (watchers resume from it)
        current["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", rtype, current)
        return copy.deepcopy(current)
