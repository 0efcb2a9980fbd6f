"""The chart's flows run on the simulator and on the real control plane (there as a release of their own)."""

from __future__ import annotations

from typing import Any

import pytest
from backends import BACKENDS, fresh_name
from chart_flow import DEFAULT, Deployment


@pytest.fixture(params=BACKENDS)
def chart_target(request: pytest.FixtureRequest) -> tuple[Any, Deployment]:
    """(cluster, deployment): no cluster means a simulator of the flow's own, with the default release."""
    if request.param == "sim":
        return None, DEFAULT
    release = Deployment(fresh_name("tb"), fresh_name("token-broker"), fresh_name("work"))
    return request.getfixturevalue("control_plane"), release
