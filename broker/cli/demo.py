"""`token-broker demo`: the simulator (or the real control plane), a broker and a demo caller on loopback
(the stack itself is demo_stack.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker.cli.exit_codes import CliError, ExitCode


@click.command("demo")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".demo"))
@click.option("--port", "api_port", type=click.IntRange(0, 65535), default=8443, show_default=True,
              help="The broker's API port on 127.0.0.1 (0: any free port).")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="The broker's metrics port (0: any free port).")  # fmt: skip
@click.option("--kube-port", "sim_port", type=click.IntRange(0, 65535), default=6443, show_default=True,
              help="The Kubernetes API simulator's port (0: any free port).")  # fmt: skip
@click.option("--control-plane", is_flag=True,
              help="Run on the real control plane built by `make control-plane` instead of the simulator "
                   "(ephemeral ports).")  # fmt: skip
def demo(state_dir: Path, api_port: int, metrics_port: int, sim_port: int, control_plane: bool) -> None:
    """Run a Kubernetes API simulator (or the real control plane) and a broker in front of it, with a demo
    caller certificate.

    A port that is taken falls back to a free one; the printed commands show the ports in use.
    """
    from broker.cli.demo_stack import run_demo
    from broker.http.request_id import RequestIdLogFilter
    from broker.logs import configure

    configure("WARNING", "text", [RequestIdLogFilter()])
    from controlplane import ControlPlaneUnavailable

    try:
        asyncio.run(
            run_demo(
                state_dir,
                api_port=api_port,
                metrics_port=metrics_port,
                sim_port=sim_port,
                control_plane=control_plane,
            )
        )
    except ControlPlaneUnavailable as err:
        raise CliError(ExitCode.FAILED, str(err).splitlines()[0]) from None
