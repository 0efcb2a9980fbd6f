"""Shared pieces of the end-to-end tests: the demo stack on ephemeral ports, an mTLS client, kubectl."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from broker.cli.demo_stack import DemoStack

# the bin directory of the interpreter running the tests: where pip put the token-broker entry point (the
# project's .venv under make, .venv-3.13 under make test-py313, any other environment that installed it)
VENV_BIN = Path(sys.executable).parent


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


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    env["HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def openssl_client_cert(
    workdir: Path, ca_cert: Path, ca_key: Path, subject: str, name: str
) -> tuple[Path, Path]:
    """A caller certificate made exactly like the manual flow: genrsa, req -subj, x509 -req -CA."""
    key = workdir / f"{name}.key"
    csr = workdir / f"{name}.csr"
    crt = workdir / f"{name}.crt"
    for cmd in (
        ["openssl", "genrsa", "-out", str(key), "2048"],
        ["openssl", "req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr)],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(crt),
            "-days",
            "1",
        ],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return crt, key


async def serve(config: Path, home: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`token-broker serve` as its own process; returns it and its API URL once it logs "broker listening"."""
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "token-broker"),
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
