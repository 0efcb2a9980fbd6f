"""How a CLI command reaches and authenticates to the broker: the shared options, turned into one
BrokerEndpoint argument (`endpoint`) before the command runs."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from broker.client import DEFAULT_TIMEOUT_SECONDS, BrokerEndpoint
from broker.exit_codes import CliError, ExitCode

API_KEY_ENV = "TOKEN_BROKER_API_KEY"

_FILE = click.Path(dir_okay=False, path_type=Path)
_OPTIONS = [
    click.option(
        "--broker",
        "broker_url",
        required=True,
        envvar="TOKEN_BROKER_URL",
        show_envvar=True,
        help="Broker URL, e.g. https://token-broker.example.com:8443.",
    ),
    click.option("--cacert", type=_FILE, help="CA bundle of the broker's TLS (default: the system's)."),
    click.option("--cert", type=_FILE, help="Client certificate (PEM)."),
    click.option("--key", type=_FILE, help="Client key (PEM)."),
    click.option(
        "--api-key-file",
        type=_FILE,
        help=f"File holding an API key or bearer token (or set {API_KEY_ENV}). Never pass a key as an argument.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(0.1, 600),
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default=True,
        help="Seconds to wait for the broker's answer.",
    ),
]


def endpoint_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection options to a command, which receives them as `endpoint: BrokerEndpoint`."""

    @functools.wraps(fn)
    def command(
        *args: Any,
        broker_url: str,
        cacert: Path | None,
        cert: Path | None,
        key: Path | None,
        api_key_file: Path | None,
        timeout: float,
        **kwargs: Any,
    ) -> Any:
        endpoint = make_endpoint(broker_url, cacert, cert, key, api_key_file, timeout)
        return fn(*args, endpoint=endpoint, **kwargs)

    wrapped: Callable[..., Any] = command
    for option in reversed(_OPTIONS):
        wrapped = option(wrapped)
    return wrapped


def make_endpoint(
    broker_url: str,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
    api_key_file: Path | None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> BrokerEndpoint:
    if key is not None and cert is None:
        raise click.UsageError("--key needs --cert")
    api_key = os.environ.get(API_KEY_ENV)
    if api_key_file is not None:
        api_key = read_secret_file(api_key_file, "API key file")
    return BrokerEndpoint(
        broker_url,
        ca_file=cacert,
        cert_file=cert,
        key_file=key,
        api_key=api_key.strip() if api_key and api_key.strip() else None,
        timeout=timeout,
        api_key_file=api_key_file,
    )


def read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path}: not a text file") from None
    if not value:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path} is empty")
    return value
