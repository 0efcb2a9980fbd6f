"""The two API servers the suite runs against: the simulator (fast, per test) and the real control plane built by
`make control-plane` (one per session, each test in namespaces of its own). Where they differ, the real one is
right. Parametrise with BACKENDS; `pytest -m real` runs the real tier alone."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane import Binaries, ControlPlane, ControlPlaneUnavailable, locate

REAL = pytest.mark.real
BACKENDS = ["sim", pytest.param("real", marks=REAL)]
_names = itertools.count()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """In CI a missing real part (the control plane, PostgreSQL) fails the run; elsewhere the test is skipped,
    saying what to install — never silently."""
    if in_ci():
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason)


def fresh_name(prefix: str) -> str:
    """A DNS-1123 name no other test in this session uses (objects on the shared control plane outlive tests)."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="session")
def control_plane_binaries() -> Binaries:
    try:
        return locate()
    except ControlPlaneUnavailable as err:
        unavailable(str(err))
        raise


@pytest.fixture(scope="session")
def control_plane(
    control_plane_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager, shared by every real-tier test of the session."""
    with ControlPlane(control_plane_binaries, tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


def kubectl_binary(real: bool) -> str:
    """The real tier uses the kubectl built with the control plane (kubectl supports one minor of skew); the
    simulator's tier the one on PATH, else that same build."""
    if not real and (found := shutil.which("kubectl")):
        return found
    try:
        return str(locate().kubectl)
    except ControlPlaneUnavailable as err:
        unavailable(f"no kubectl on PATH and {err}")
        raise


def cluster_kwargs(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """DemoStack arguments for this backend: nothing for the simulator (the stack starts its own); for the real
    control plane the shared cluster with a namespace and a broker identity of this test's own."""
    if backend == "sim":
        return {}
    plane = request.getfixturevalue("control_plane")
    return {"cluster": plane, "namespace": fresh_name("e2e"), "broker_user": fresh_name("token-broker")}
