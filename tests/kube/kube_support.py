"""Helpers shared by the broker.kube tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from broker.kube import ClusterClient, RetryPolicy
from broker.testing.kubesim import KubeSim

# fast enough for tests, still several attempts
FAST_RETRY = RetryPolicy(
    attempts=3, max_elapsed=5.0, base_backoff=0.01, max_backoff=0.05, max_retry_after=2.0
)

MakeClient = Callable[..., Awaitable[ClusterClient]]


def posts(sim: KubeSim, path: str) -> list[int]:
    """Status codes of the POSTs the simulator saw on exactly `path` (from its audit log)."""
    return [e.code for e in sim.audit_events if e.method == "POST" and e.path == path]
