"""Running the real kubectl and the token-broker CLI as processes, in an environment of the test's own.

One environment for every child process: HOME isolated (kubectl's discovery cache, the CLI's credential cache),
the interpreter's bin first on PATH (the token-broker under test, for kubectl's exec plugin), and nothing from
outside that points at another cluster, broker or proxy. Every run has a timeout; the async forms run off the event
loop so that in-process servers keep answering.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
TOKEN_BROKER = str(VENV_BIN / "token-broker")
KUBECTL = "/usr/bin/kubectl"
_DROPPED_ENV = frozenset(
    {
        "KUBECONFIG",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "TOKEN_BROKER_URL",
        "TOKEN_BROKER_API_KEY",
    }
)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _DROPPED_ENV}
    env.update(HOME=str(home), PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    env.update(extra)
    return env


def run(args: list[str], *, home: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=clean_env(home, **env), check=False
    )


async def run_async(
    args: list[str], *, home: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, args, home=home, timeout=timeout, **env)


def run_kubectl(
    kubeconfig: Path | None,
    *args: str,
    home: Path | None = None,
    binary: str = KUBECTL,
    timeout: float = 60,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """kubectl with this kubeconfig (None: the arguments say everything); HOME beside the kubeconfig by default."""
    if home is None:
        assert kubeconfig is not None, "give a home when there is no kubeconfig"
        home = kubeconfig.parent / ".kubectl-home"
        home.mkdir(exist_ok=True)
    config = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    return run([binary, *config, *args], home=home, timeout=timeout, **env)


async def kubectl(
    kubeconfig: Path | None,
    *args: str,
    home: Path | None = None,
    binary: str = KUBECTL,
    timeout: float = 60,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        run_kubectl, kubeconfig, *args, home=home, binary=binary, timeout=timeout, **env
    )


async def token_broker(
    *args: str, home: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI under test as its own process."""
    return await run_async([TOKEN_BROKER, *args], home=home, timeout=timeout, **env)
