"""Helpers for the simulator tests: an HTTPS client as some user, and kubectl as some user."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from support.processes import kubectl

from kubesim import KubeSim

TIMEOUT = aiohttp.ClientTimeout(total=10)


@asynccontextmanager
async def client(
    sim: KubeSim,
    user: str | None = "admin",
    groups: tuple[str, ...] = ("system:masters",),
    token: str | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session to the simulator: as a client-certificate user, with a bearer token, or anonymous (user=None)."""
    cert = sim.client_cert(user, list(groups)) if user is not None else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(ssl=sim.client_ssl_context(cert))
    async with aiohttp.ClientSession(
        base_url=sim.url, connector=connector, headers=headers, timeout=TIMEOUT, trust_env=False
    ) as session:
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """(status, JSON body or text, response)."""
    async with session.request(method, path, **kwargs) as resp:
        text = await resp.text()
        body: Any = text
        if resp.content_type == "application/json":
            body = await resp.json()
        return resp.status, body, resp


def kubeconfig_for(sim: KubeSim, tmp_path: Path, user: str, groups: tuple[str, ...] = ()) -> Path:
    return sim.write_kubeconfig(tmp_path / f"{user}.kubeconfig", cert=sim.client_cert(user, list(groups)))


async def admin(sim: KubeSim, *args: str) -> subprocess.CompletedProcess[str]:
    assert sim.admin_kubeconfig is not None
    return await kubectl(sim.admin_kubeconfig, *args)
