"""Running the simulator as a process (`token-broker kube-sim`): serve until SIGTERM/SIGINT, then stop
within a bounded time."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from .options import SimOptions
from .server import KubeSim

STOP_TIMEOUT = 10.0


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:6443", "[::1]:6443", "localhost:0" → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def banner(sim: KubeSim, state_dir: Path) -> list[str]:
    return [
        f"kube-sim: serving the Kubernetes API at {sim.url} (authorization: {sim.options.authorization})",
        f"  cluster CA:          {state_dir / 'ca.crt'}  (key: {state_dir / 'ca.key'})",
        f"  service-account key: {state_dir / 'sa.key'}",
        f"  admin kubeconfig:    {state_dir / 'admin.kubeconfig'}  (CN=admin, O=system:masters)",
        f"  issuer:              {sim.ctx.issuer}",
        f"  try: kubectl --kubeconfig {state_dir / 'admin.kubeconfig'} get ns",
    ]


async def serve(
    options: SimOptions, state_dir: Path, host: str, port: int, echo: Callable[[str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sim = KubeSim(options, state_dir=state_dir, host=host, port=port)
    await sim.start()
    try:
        for line in banner(sim, state_dir):
            echo(line)
        await stop.wait()
        echo("kube-sim: stopping")
    finally:
        await asyncio.wait_for(sim.stop(), STOP_TIMEOUT)


def run(options: SimOptions, state_dir: Path, listen: str, echo: Callable[[str], None]) -> None:
    host, port = parse_listen(listen)
    asyncio.run(serve(options, state_dir, host, port, echo))
