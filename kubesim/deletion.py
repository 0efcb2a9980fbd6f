"""Deleting an object as the generic registry's Store.Delete does it: finalizers keep a deleted object (with
deletionTimestamp) until they are all removed, and the propagation policy becomes a finalizer the garbage
collector acts on (Orphan → `orphan`, Foreground → `foregroundDeletion`; Background, the default of every type
served here, deletes at once and lets the collector delete the dependents afterwards).

Used by the API's DELETE and by the garbage collector, which deletes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import status
from .state import Obj, ResourceType, Store, now_rfc3339
from .validation import FOREGROUND, ORPHAN, go_quote, unsupported_cause

POLICIES = ("Foreground", "Background", "Orphan")


@dataclass(frozen=True)
class Propagation:
    """DeleteOptions' propagationPolicy, or the deprecated orphanDependents, or neither (None for both)."""

    policy: str | None = None
    orphan_dependents: bool | None = None

    @classmethod
    def of(cls, options: dict[str, Any]) -> Propagation:
        """From a DeleteOptions body; 422 as ValidateDeleteOptions words it."""
        policy, orphan = options.get("propagationPolicy"), options.get("orphanDependents")
        if policy is not None and not isinstance(policy, str):
            raise status.bad_request("propagationPolicy must be a string")
        if orphan is not None and not isinstance(orphan, bool):
            raise status.bad_request("orphanDependents must be a boolean")
        causes = []
        if policy is not None and orphan is not None:
            message = f"Invalid value: {go_quote(policy)}: orphanDependents and deletionPropagation cannot be both set"
            causes.append(status.Cause("propagationPolicy", message))
        if policy is not None and policy not in POLICIES:
            causes.append(unsupported_cause("propagationPolicy", policy, [*POLICIES, "nil"]))
        if causes:
            err = status.invalid("DeleteOptions", "", causes, "meta.k8s.io")
            if err.details is not None:
                err.details.pop("name", None)
            raise err
        return cls(policy, orphan)

    def finalizers(self, existing: list[str]) -> list[str]:
        """deletionFinalizersForGarbageCollection: the object's finalizers with the policy's in place of any."""
        orphan = self._orphan(existing)
        foreground = self._foreground(existing)
        kept = [f for f in existing if f not in (ORPHAN, FOREGROUND)]
        return kept + ([ORPHAN] if orphan else []) + ([FOREGROUND] if foreground else [])

    def _orphan(self, existing: list[str]) -> bool:
        if self.orphan_dependents is not None:
            return self.orphan_dependents
        if self.policy is not None:
            return self.policy == "Orphan"
        return _first_gc_finalizer(existing) == ORPHAN

    def _foreground(self, existing: list[str]) -> bool:
        if self.orphan_dependents is not None:
            return False
        if self.policy is not None:
            return self.policy == "Foreground"
        return _first_gc_finalizer(existing) == FOREGROUND


def _first_gc_finalizer(finalizers: list[str]) -> str | None:
    return next((f for f in finalizers if f in (ORPHAN, FOREGROUND)), None)


@dataclass(frozen=True)
class Deleted:
    """What a delete left: the object (its last state, or as still stored) and whether it is gone."""

    obj: Obj
    gone: bool


def delete(
    store: Store, rtype: ResourceType, current: Obj, propagation: Propagation, dry_run: bool = False
) -> Deleted:
    """Delete `current` (already read and checked against any preconditions)."""
    meta = current["metadata"]
    existing = list(meta.get("finalizers") or [])
    finalizers = propagation.finalizers(existing)
    namespace = meta.get("namespace")
    if not finalizers:
        if dry_run:
            return Deleted(current, True)
        return Deleted(store.delete(rtype, namespace, meta["name"], uid=meta["uid"]), True)
    marked = {**current, "metadata": {**meta, "finalizers": finalizers}}
    # markAsDeleting: a deletionTimestamp of now unless one is set already, and no grace period
    marked["metadata"].setdefault("deletionTimestamp", now_rfc3339())
    marked["metadata"]["deletionGracePeriodSeconds"] = 0
    if dry_run:
        return Deleted(marked, False)
    return Deleted(store.update(rtype, namespace, marked), False)
