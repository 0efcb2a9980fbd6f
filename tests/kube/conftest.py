"""Fixtures for broker.kube against the simulator: clients for the admin and for users of a test's making."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.kube import ClusterClient, RetryPolicy
from broker.testing.kubesim import KubeSim

# fast enough for tests, still several attempts
FAST_RETRY = RetryPolicy(
    attempts=3, max_elapsed=5.0, base_backoff=0.01, max_backoff=0.05, max_retry_after=2.0
)

MakeClient = Callable[..., Awaitable[ClusterClient]]


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
