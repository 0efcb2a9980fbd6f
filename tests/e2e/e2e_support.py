"""Shared pieces of the end-to-end tests: the demo stack on ephemeral ports, an mTLS client, kubectl."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from support.processes import TOKEN_BROKER, clean_env

from broker.cli.demo_stack import DemoStack

# the bin directory of the interpreter running the tests: where pip put the token-broker entry point (the
# project's .venv under make, .venv-3.13 under make test-py313, any other environment that installed it)


def stack_at(root: Path, **kwargs: Any) -> DemoStack:
    return DemoStack(root, api_port=0, metrics_port=0, sim_port=0, **kwargs)


def mtls_context(stack: DemoStack, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(stack.paths.server_ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def post_token(
    stack: DemoStack, ctx: ssl.SSLContext, body: Any, *, params: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.post(stack.broker_url + "/v1/tokens", json=body, params=params, ssl=ctx) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


async def serve(config: Path, home: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`token-broker serve` as its own process; returns it and its API URL once it logs "broker listening"."""
    proc = await asyncio.create_subprocess_exec(
        TOKEN_BROKER,
        "serve",
        "--config",
        str(config),
        "--log-format",
        "json",
        env=clean_env(home),
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    for _ in range(500):
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        if not line:
            break
        record = json.loads(line)
        if record["message"] == "broker listening":
            return proc, str(record["api"])
    proc.kill()
    await proc.wait()
    raise AssertionError("the broker exited or never reported listening")


async def until_unauthorized(
    kubectl: Callable[..., Awaitable[subprocess.CompletedProcess[str]]],
    kubeconfig: Path,
    home: Path,
    *,
    bound: float = 30.0,
) -> float:
    """Seconds until kubectl is refused with this kubeconfig. The simulator refuses at once; a real
    kube-apiserver caches a token's successful authentication for about 10 s, so revocation lags that much."""
    started = time.monotonic()
    while True:
        result = await kubectl(kubeconfig, "auth", "whoami", home=home)
        if result.returncode != 0:
            assert "Unauthorized" in result.stderr, result.stderr
            return time.monotonic() - started
        assert time.monotonic() - started < bound, f"still accepted {bound:.0f} s after revocation"
        await asyncio.sleep(0.5)
