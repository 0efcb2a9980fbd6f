"""Shared fixtures: a running Kubernetes API simulator and broker clients of it (kubectl: support.processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends import control_plane, control_plane_binaries
from kubesim_harness import MakeClient
from support.retry import FAST_RETRY

from broker.kube import Cluster, RetryPolicy
from kubesim import KubeSim, SimOptions

__all__ = [
    "FAST_RETRY",
    "MakeClient",
    "control_plane",
    "control_plane_binaries",
]


@pytest.fixture
async def kubesim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    """A started simulator with RBAC on; its files (ca.crt, ca.key, sa.key, admin.kubeconfig) in tmp_path/kubesim."""
    async with KubeSim(SimOptions(), state_dir=tmp_path / "kubesim") as sim:
        yield sim


@pytest.fixture
async def kubesim_allow(tmp_path: Path) -> AsyncIterator[KubeSim]:
    """A started simulator whose authorizer allows every authenticated request (`--authorization always-allow`)."""
    async with KubeSim(SimOptions(authorization="always-allow"), state_dir=tmp_path / "kubesim-allow") as sim:
        yield sim


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    # the simulator is local: a proxy from the test runner's environment must not capture its traffic
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """`await make_client(kubeconfig, request_timeout=..., retry=...)`: a broker Cluster of the simulator;
    every client is closed afterwards."""
    clients: list[Cluster] = []

    async def make(
        kubeconfig: Path, *, request_timeout: float = 5.0, retry: RetryPolicy = FAST_RETRY, name: str = "sim"
    ) -> Cluster:
        client = await Cluster.connect(
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
async def admin(kubesim: KubeSim, make_client: MakeClient) -> Cluster:
    """A Cluster authenticated as the simulator's admin (CN=admin, O=system:masters)."""
    assert kubesim.admin_kubeconfig is not None
    return await make_client(kubesim.admin_kubeconfig)
