"""Shared fixtures: a running Kubernetes API simulator, and `run_kubectl` to drive the real kubectl against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubesim_harness import KUBECTL, kubectl_env, run_kubectl

from broker.testing.kubesim import KubeSim, SimOptions

__all__ = ["KUBECTL", "kubectl_env", "run_kubectl"]


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
