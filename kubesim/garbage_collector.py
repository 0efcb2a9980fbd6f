"""kube-controller-manager's garbage collector (pkg/controller/garbagecollector), for the types served here.

A dependent names its owners in metadata.ownerReferences (by apiVersion, kind, name and uid). When every owner
it names is gone, the collector deletes it (as `attemptToDeleteItem` does): an owner is gone when no object of
that kind and name exists — in the dependent's own namespace for a namespaced kind, so a namespaced owner in
another namespace is as good as absent — or when the one that exists has another uid. A dependent with one
owner still there only loses the references to the absent ones. Two references the real collector cannot
resolve stop it from ever deleting the dependent: a kind the server does not serve, and a namespaced owner of a
cluster-scoped dependent (the real one records an OwnerRefInvalidNamespace event; there are no Events here).
Deletion with propagationPolicy Foreground waits (finalizer `foregroundDeletion`) until the dependents that
set blockOwnerDeletion are gone, deleting all dependents; Orphan (finalizer `orphan`) removes the owner from its
dependents' references first. The collector acts asynchronously, soon after the change that concerns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import deletion
from .state import EventType, Obj, ResourceType, Store
from .status import ApiError
from .validation import FOREGROUND, ORPHAN

log = logging.getLogger(__name__)

# how many items one turn of the event loop processes before yielding (a cascade continues on the next turn)
_BATCH = 500


@dataclass(frozen=True)
class Item:
    rtype: ResourceType
    namespace: str | None
    name: str
    uid: str


@dataclass
class References:
    solid: list[dict[str, Any]]
    dangling: list[dict[str, Any]]
    waiting: list[dict[str, Any]]


def _item(rtype: ResourceType, obj: Obj) -> Item:
    meta = obj["metadata"]
    return Item(rtype, meta.get("namespace") if rtype.namespaced else None, meta["name"], meta["uid"])


def _refs(obj: Obj) -> list[dict[str, Any]]:
    return [r for r in obj.get("metadata", {}).get("ownerReferences") or [] if isinstance(r, dict)]


def _being_deleted_with(obj: Obj, finalizer: str) -> bool:
    meta = obj.get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])


class GarbageCollector:
    def __init__(self, store: Store, kinds: Callable[[], list[ResourceType]]) -> None:
        self._store = store
        self._kinds = kinds
        # owner uid → its dependents, and each dependent's owner uids (the collector's dependency graph)
        self._dependents: dict[str, set[Item]] = {}
        self._owners: dict[Item, set[str]] = {}
        self._queue: dict[Item, None] = {}
        self._handle: asyncio.Handle | None = None
        self._draining = False
        self._stopped = False

    # -- the graph, kept from the store's events ---------------------------------------------------------------
    def on_event(self, event: EventType, rtype: ResourceType, obj: Obj) -> None:
        if self._stopped:
            return
        item = _item(rtype, obj)
        self._forget(item)
        if event == "DELETED":
            # its dependents may now be orphans; an owner waiting for it may finish
            self._enqueue(*self._dependents.get(item.uid, ()))
            self._enqueue(*self._owner_items(obj))
        else:
            owners = {str(r.get("uid")) for r in _refs(obj) if r.get("uid")}
            if owners:
                self._owners[item] = owners
                for uid in owners:
                    self._dependents.setdefault(uid, set()).add(item)
                self._enqueue(item)
            if _being_deleted_with(obj, FOREGROUND) or _being_deleted_with(obj, ORPHAN):
                self._enqueue(item, *self._dependents.get(item.uid, ()))
        self._schedule()

    def _forget(self, item: Item) -> None:
        for uid in self._owners.pop(item, set()):
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(item)
                if not dependents:
                    del self._dependents[uid]

    def _owner_items(self, obj: Obj) -> Iterator[Item]:
        """The owners of a deleted dependent that are waiting for their dependents (foreground deletion)."""
        for ref in _refs(obj):
            owner_type = self._kind_of(ref)
            if owner_type is None:
                continue
            namespace = obj["metadata"].get("namespace") if owner_type.namespaced else None
            owner = self._store.try_get(owner_type, namespace, str(ref.get("name") or ""))
            if owner is not None and _being_deleted_with(owner, FOREGROUND):
                yield _item(owner_type, owner)

    # -- the work queue ------------------------------------------------------------------------------------------
    def _enqueue(self, *items: Item) -> None:
        for item in items:
            self._queue[item] = None

    def _schedule(self) -> None:
        if self._draining or self._handle is not None or not self._queue:
            return
        try:
            self._handle = asyncio.get_running_loop().call_soon(self._drain)
        except RuntimeError:
            self._drain()  # a store driven directly, outside an event loop

    def _drain(self) -> None:
        self._handle = None
        self._draining = True
        try:
            for _ in range(_BATCH):
                if not self._queue or self._stopped:
                    break
                item = next(iter(self._queue))
                del self._queue[item]
                try:
                    self._attempt(item)
                except ApiError as err:  # changed meanwhile: the event of that change brings it back
                    log.info("garbage collector: %s %s: %s", item.rtype.kind, item.name, err)
        finally:
            self._draining = False
        self._schedule()

    # -- attemptToDeleteItem ---------------------------------------------------------------------------------------
    def _attempt(self, item: Item) -> None:
        latest = self._store.try_get(item.rtype, item.namespace, item.name)
        if latest is None or latest["metadata"]["uid"] != item.uid:
            return
        if _being_deleted_with(latest, ORPHAN):
            self._orphan_dependents(item, latest)
            return
        if _being_deleted_with(latest, FOREGROUND):
            self._finish_foreground(item, latest)
            return
        if latest["metadata"].get("deletionTimestamp") or not _refs(latest):
            return
        refs = self._classify(item, latest)
        if refs is None:
            return
        if refs.solid:
            absent = {str(r.get("uid")) for r in refs.dangling + refs.waiting}
            if absent:
                self._drop_references(item, latest, absent)
            return
        if refs.waiting and self._dependents.get(item.uid):
            policy = "Foreground"
        else:
            finalizers = latest["metadata"].get("finalizers") or []
            policy = (
                "Orphan"
                if ORPHAN in finalizers
                else "Foreground"
                if FOREGROUND in finalizers
                else "Background"
            )
        deletion.delete(self._store, item.rtype, latest, deletion.Propagation(policy))

    def _kind_of(self, ref: dict[str, Any]) -> ResourceType | None:
        group, _, version = str(ref.get("apiVersion") or "").rpartition("/")
        kind = ref.get("kind")
        return next(
            (t for t in self._kinds() if (t.group, t.version, t.kind) == (group, version, kind)),
            None,
        )

    def _classify(self, item: Item, dependent: Obj) -> References | None:
        """classifyReferences; None when a reference cannot be resolved (the real collector retries those
        forever and never deletes the dependent)."""
        refs = References([], [], [])
        for ref in _refs(dependent):
            owner_type = self._kind_of(ref)
            if owner_type is None:
                return None
            if owner_type.namespaced and not item.rtype.namespaced:
                return None  # cluster-scoped objects cannot refer to namespaced owners
            namespace = item.namespace if owner_type.namespaced else None
            owner = self._store.try_get(owner_type, namespace, str(ref.get("name") or ""))
            if owner is None or owner["metadata"]["uid"] != ref.get("uid"):
                refs.dangling.append(ref)
            elif _being_deleted_with(owner, FOREGROUND):
                refs.waiting.append(ref)
            else:
                refs.solid.append(ref)
        return refs

    def _drop_references(self, item: Item, obj: Obj, uids: set[str]) -> None:
        kept = [r for r in _refs(obj) if str(r.get("uid")) not in uids]
        meta = obj["metadata"]
        if kept:
            meta["ownerReferences"] = kept
        else:
            meta.pop("ownerReferences", None)
        self._store.update(item.rtype, item.namespace, obj)

    def _remove_finalizer(self, item: Item, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        left = [f for f in meta.get("finalizers") or [] if f != finalizer]
        if left:
            meta["finalizers"] = left
        else:
            meta.pop("finalizers", None)
        self._store.update(item.rtype, item.namespace, obj)

    def _orphan_dependents(self, item: Item, owner: Obj) -> None:
        for dependent in list(self._dependents.get(item.uid, ())):
            current = self._store.try_get(dependent.rtype, dependent.namespace, dependent.name)
            if current is not None and current["metadata"]["uid"] == dependent.uid:
                with contextlib.suppress(ApiError):
                    self._drop_references(dependent, current, {item.uid})
        self._remove_finalizer(item, owner, ORPHAN)

    def _finish_foreground(self, item: Item, owner: Obj) -> None:
        """processDeletingDependentsItem: done once no dependent blocks the owner's deletion."""
        blocking = []
        for dependent in self._dependents.get(item.uid, ()):
            current = self._store.try_get(dependent.rtype, dependent.namespace, dependent.name)
            if current is None or current["metadata"]["uid"] != dependent.uid:
                continue
            if any(r.get("uid") == item.uid and r.get("blockOwnerDeletion") is True for r in _refs(current)):
                blocking.append(dependent)
        if blocking:
            self._enqueue(*blocking)
        else:
            self._remove_finalizer(item, owner, FOREGROUND)

    def stop(self) -> None:
        self._stopped = True
        self._store.remove_listener(self.on_event)
        if self._handle is not None:
            self._handle.cancel()
        self._queue.clear()


def install(store: Store, kinds: Callable[[], list[ResourceType]]) -> GarbageCollector:
    collector = GarbageCollector(store, kinds)
    store.add_listener(collector.on_event)
    return collector
