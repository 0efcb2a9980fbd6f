"""The type of the `make_client` fixture (tests/conftest.py), for test modules that annotate it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from broker.kube import Cluster

MakeClient = Callable[..., Awaitable[Cluster]]
