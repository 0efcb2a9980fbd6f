"""The e2e stack on either backend: every test that takes `stack` (or `make_stack`) runs against the simulator
and against the real control plane; `sim_stack` is for the few that need the simulator's fault switches."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS, cluster_kwargs, kubectl_binary
from e2e_support import stack_at
from support import processes

from broker.cli.demo_stack import DemoStack

MakeStack = Callable[..., AbstractAsyncContextManager[DemoStack]]
Kubectl = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_stack(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> MakeStack:
    """`async with make_stack(janitor_config=...) as stack:` — a stack with settings of the test's own."""
    counter = iter(range(1000))

    @asynccontextmanager
    async def make(**kwargs: Any) -> AsyncIterator[DemoStack]:
        root = tmp_path / f"demo-{next(counter)}"
        async with stack_at(root, **cluster_kwargs(request, backend), **kwargs) as running:
            yield running

    return make


@pytest.fixture
async def stack(make_stack: MakeStack) -> AsyncIterator[DemoStack]:
    async with make_stack() as running:
        yield running


@pytest.fixture
async def sim_stack(tmp_path: Path) -> AsyncIterator[DemoStack]:
    async with stack_at(tmp_path / "demo") as running:
        yield running


@pytest.fixture
def kubectl(request: pytest.FixtureRequest) -> Kubectl:
    """The real kubectl for this test's backend, run off the event loop so in-process servers keep answering."""
    real = "backend" in request.fixturenames and request.getfixturevalue("backend") == "real"
    binary = kubectl_binary(real)

    async def run(
        kubeconfig: Path, *args: str, home: Path, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return await processes.kubectl(kubeconfig, *args, home=home, binary=binary, timeout=timeout)

    return run
