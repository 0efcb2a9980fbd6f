"""The exit status of every `token-broker` command, defined once: the `--help` epilog and README.md's table are
made from (and tested against) this enum. A CLI failure is a CliError carrying one of these and one line of text.

Scripts and CI jobs can branch on the code: 4, 6 and 8 are worth a retry, 3 and 7 are not.
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    LOCAL_FILE = 3
    CONNECT = 4
    TLS = 5
    TIMEOUT = 6
    REFUSED = 7
    UNAVAILABLE = 8
    PROTOCOL = 9

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "the command ran and the answer is no: a signature that does not verify, no such record, "
    "no usable role, a broker that cannot start (port in use)",
    ExitCode.USAGE: "bad command line, or a config file that does not validate",
    ExitCode.LOCAL_FILE: "a local file (CA bundle, client certificate or key, API key file, kubeconfig) is "
    "missing or unusable",
    ExitCode.CONNECT: "cannot connect to the broker: connection refused, unknown host, network unreachable, "
    "connection closed",
    ExitCode.TLS: "TLS failed: the broker's certificate does not verify, or the handshake was refused",
    ExitCode.TIMEOUT: "no answer within --timeout",
    ExitCode.REFUSED: "the broker refused the request (HTTP 4xx: 401, 403, 404, 409, 422): retrying will not help",
    ExitCode.UNAVAILABLE: "the broker or the cluster behind it is unavailable (HTTP 429 or 5xx): retry later",
    ExitCode.PROTOCOL: "the answer is not one a broker gives (not JSON, fields missing): is the URL right?",
}


class CliError(Exception):
    """A failure the CLI reports as `token-broker: <message>` and exits with `code`; never a traceback."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def epilog() -> str:
    """The exit-status table for `--help` (click keeps the line breaks of a paragraph that starts with \\b)."""
    lines = ["\b", "Exit status:"]
    lines += [f"  {code.value}  {code.meaning}" for code in ExitCode]
    return "\n".join(lines)


def config_problems(exc: Exception) -> NoReturn:
    """A ConfigError is one `file: key.path: problem` line per problem, printed as they are."""
    import click

    click.echo(str(exc), err=True)
    sys.exit(ExitCode.USAGE)
