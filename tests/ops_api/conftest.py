"""Fixtures of the operators' API tests live in ops_api_support (importable by the tests themselves)."""

import pytest
from ops_api_support import cluster, make_api, pki, store

__all__ = ["cluster", "make_api", "pki", "store"]


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    # the simulator and the broker are local: a proxy from the runner's environment must not capture them
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
