"""Fixtures for the janitor and leader election: clients of the simulator, a real SQLite audit store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from janitor_support import FAST_RETRY, MakeClient

from broker.audit import AuditSettings, SqlAuditStore, make_sql_store
from broker.kube import ClusterClient, RetryPolicy
from broker.testing.kubesim import KubeSim


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    # the simulator is local: a proxy from the test runner's environment must not capture its traffic
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """`await make_client(kubeconfig, request_timeout=..., retry=...)`; every client is closed afterwards."""
    clients: list[ClusterClient] = []

    async def make(
        kubeconfig: Path, *, request_timeout: float = 5.0, retry: RetryPolicy = FAST_RETRY, name: str = "sim"
    ) -> ClusterClient:
        client = await ClusterClient.create(
            name,
            kubeconfig=kubeconfig,
            context=None,
            in_cluster=False,
            request_timeout=request_timeout,
            retry=retry,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def admin(kubesim: KubeSim, make_client: MakeClient) -> ClusterClient:
    assert kubesim.admin_kubeconfig is not None
    return await make_client(kubesim.admin_kubeconfig)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlAuditStore]:
    """A real SQLite audit store in tmp_path."""
    settings = AuditSettings(
        sqlite_path=tmp_path / "audit.sqlite3", group_commit_max_delay_ms=1.0, retention_days=1
    )
    audit = make_sql_store(settings)
    await audit.open()
    yield audit
    await audit.close()
