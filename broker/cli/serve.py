"""`token-broker serve`: run the broker until SIGTERM/SIGINT (SIGHUP reloads)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker.cli.exit_codes import CliError, ExitCode, config_problems


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--log-format", type=click.Choice(["auto", "json", "text"]), default="auto", show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
def serve(config_path: Path, log_format: str, log_level: str) -> None:
    """Run the broker until SIGTERM/SIGINT; SIGHUP reloads roles, grants and callers."""
    from broker.app import Broker, serve_until_signalled
    from broker.app.preflight import check_files
    from broker.http.request_id import RequestIdLogFilter
    from broker.kube.transport import ClusterConfigError
    from broker.logs import configure
    from broker.settings import ConfigError, load_config

    configure(log_level, log_format, [RequestIdLogFilter()])
    try:
        config = load_config(config_path)
        check_files(config_path, config)
        broker = Broker(config_path, config)
    except ConfigError as exc:
        config_problems(exc)
    except ValueError as exc:
        raise CliError(ExitCode.USAGE, str(exc)) from None
    try:
        asyncio.run(serve_until_signalled(broker))
    except (OSError, ClusterConfigError) as exc:
        # a port in use, unreadable TLS files, an unusable kubeconfig: say which, no traceback
        raise CliError(ExitCode.FAILED, f"cannot start: {exc}") from None
