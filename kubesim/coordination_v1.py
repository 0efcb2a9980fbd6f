"""coordination.k8s.io/v1 Leases: what leader election (client-go leaderelection, the broker's janitor) uses.

Optimistic concurrency is the generic one: an update carrying a stale resourceVersion is a 409 Conflict.
"""

from __future__ import annotations

import re

from .context import SimContext
from .resources import Strategy, cannot_handle, deep
from .state import Obj, ResourceType
from .status import Cause
from .tables import AGE, NAME, Column
from .validation import invalid_cause

LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, singular="lease")

# metav1.MicroTime: RFC 3339 with microseconds ("2006-01-02T15:04:05.000000Z07:00"); RFC 3339 is accepted too
_MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_INT_FIELDS = ("leaseDurationSeconds", "leaseTransitions")
_STR_FIELDS = ("holderIdentity", "strategy", "preferredHolder")


def _prepare(_ctx: SimContext, obj: Obj, _old: Obj | None) -> None:
    spec = obj.get("spec")
    if spec is None:
        obj["spec"] = spec = {}
    if not isinstance(spec, dict):
        raise cannot_handle(LEASES, "spec", "v1.LeaseSpec", spec)
    for key in _INT_FIELDS:
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise cannot_handle(LEASES, f"spec.{key}", "int32", value)
    for key in _STR_FIELDS:
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise cannot_handle(LEASES, f"spec.{key}", "string", spec[key])
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, str) or not _MICRO_TIME.match(value)):
            raise cannot_handle(LEASES, f"spec.{key}", "v1.MicroTime", value)


def _validate(_ctx: SimContext, obj: Obj, _old: Obj | None) -> list[Cause]:
    # pkg/apis/coordination/validation.ValidateLeaseSpec
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        causes.append(invalid_cause("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        causes.append(
            invalid_cause("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    return causes


LEASE_STRATEGY = Strategy(
    LEASES,
    prepare=_prepare,
    validate=_validate,
    # the lease registry allows create-on-update (PUT of a missing lease creates it)
    allow_create_on_update=True,
    # leader election must not overwrite another holder's renewal: every update names the version it read
    unconditional_update=False,
    columns=(NAME, Column("Holder", lambda o: deep(o, "spec", "holderIdentity") or ""), AGE),
)


def strategies() -> list[Strategy]:
    return [LEASE_STRATEGY]
