"""Driving the real kubectl against the simulator (imported by tests/conftest.py; importable as a module too)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from broker.kube import Cluster

KUBECTL = "/usr/bin/kubectl"
# environment variables that must not leak into kubectl (another cluster, proxies)
_DROPPED_ENV = ("KUBECONFIG", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def kubectl_env(home: Path) -> dict[str, str]:
    """An environment for kubectl: no KUBECONFIG or proxies from outside, HOME (discovery cache) isolated."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _DROPPED_ENV}
    env["HOME"] = str(home)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def run_kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl with this kubeconfig. Blocking: from async tests use `asyncio.to_thread`."""
    home = kubeconfig.parent / ".kubectl-home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=kubectl_env(home),
        check=False,
    )


MakeClient = Callable[..., Awaitable[Cluster]]
