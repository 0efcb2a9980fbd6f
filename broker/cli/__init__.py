"""token-broker command line: one module per command group (tokens, credential, audit/, revoke, pki,
serve, config, demo, decode), imported only for the command that runs; _endpoint.py holds the connection
options and the broker API client, exit_codes.py the exit statuses."""

from __future__ import annotations

import importlib
from typing import Any

import click

from broker import __version__

from .exit_codes import CliError, ExitCode, epilog

# Where each broker command lives. Modules are imported only for the command that runs: kubectl runs
# `credential` once per command, and importing every command group would double its start-up time.
_LAZY = {
    "serve": "broker.cli.serve:serve",
    "demo": "broker.cli.demo:demo",
    "issue": "broker.cli.tokens:issue",
    "pki": "broker.cli.pki:pki",
    "config": "broker.cli.config:config_group",
    "credential": "broker.cli.credential:credential",
    "kubeconfig": "broker.cli.credential:kubeconfig",
    "logout": "broker.cli.credential:logout",
    "audit": "broker.cli.audit:audit",
    "revoke": "broker.cli.revoke:revoke",
    "decode": "broker.cli.decode:decode",
    # the simulator's own command (also `kube-sim` and `python -m kubesim`), kept here for the demo's users
    "kube-sim": "kubesim.__main__:kube_sim",
}


class _Cli(click.Group):
    """Every CliError a command raises becomes one line on stderr and its exit status: no traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            module, attr = _LAZY[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attr)
            _with_epilog(command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            click.echo(f"token-broker: {exc.message}", err=True)
            ctx.exit(int(exc.code))
        except OSError as exc:
            # a local file (a network failure is a CliError by now): which one, and why
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"token-broker: {where}{exc.strerror or exc}", err=True)
            ctx.exit(int(ExitCode.LOCAL_FILE))


def _with_epilog(command: click.Command) -> None:
    """Each command's --help ends with the exit-status table."""
    command.epilog = epilog()
    for sub in getattr(command, "commands", {}).values():
        _with_epilog(sub)


@click.group(cls=_Cli, epilog=epilog())
@click.version_option(__version__, prog_name="token-broker")
def main() -> None:
    """Short-lived, verified, audited Kubernetes service-account tokens."""
