"""The real use cases over an in-memory Kubernetes API and a real SQLite audit store, one journal for both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.journal import JournaledStore
from support.memory_kube import MemoryKube
from support.stores import sqlite_store
from usecase_support import CLUSTER, make_policy

from broker.usecases.issuance import Issuer


@pytest.fixture
def kube() -> MemoryKube:
    return MemoryKube()


@pytest.fixture
async def store(tmp_path: Path, kube: MemoryKube) -> AsyncIterator[JournaledStore]:
    async with sqlite_store(tmp_path) as real:
        yield JournaledStore(real, kube.journal)


@pytest.fixture
def issuer(kube: MemoryKube, store: JournaledStore) -> Issuer:
    policy = make_policy()
    return Issuer(lambda: policy, {CLUSTER: kube.handle(CLUSTER)}, store)  # type: ignore[arg-type]
