"""Helpers shared by the broker.kube tests (fixtures live in conftest.py)."""

from __future__ import annotations

from kubesim_harness import MakeClient as MakeClient

# re-exported for the tests of this folder
from support.retry import FAST_RETRY as FAST_RETRY

from kubesim import KubeSim


def posts(sim: KubeSim, path: str) -> list[int]:
    """Status codes of the POSTs the simulator saw on exactly `path` (from its audit log)."""
    return [e.code for e in sim.audit_events if e.method == "POST" and e.path == path]
