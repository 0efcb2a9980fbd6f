"""`token-broker issue`: a token from the broker, printed as JSON, a kubeconfig or an ExecCredential."""

from __future__ import annotations

import asyncio

import click

from broker.cli._endpoint import (
    BrokerEndpoint,
    endpoint_options,
    parse_json,
    request,
    token_body,
)
from broker.cli.exit_codes import CliError, ExitCode


@click.command("issue")
@endpoint_options
@click.option("--role", required=True)
@click.option("--namespace")
@click.option("--ttl", help="Seconds or a duration such as 15m.")
@click.option("--audience", "audiences", multiple=True)
@click.option(
    "--output",
    "output",
    type=click.Choice(["json", "kubeconfig", "token", "exec-credential"]),
    default="json",
    show_default=True,
)
def issue(
    endpoint: BrokerEndpoint,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    output: str,
) -> None:
    """Ask the broker for a token and print it.

    In a pod, set TOKEN_BROKER_URL in its spec and pass the projected service-account token with
    --api-key-file (README: "In-cluster agents").
    """
    params = {"format": output} if output in ("kubeconfig", "exec-credential") else None
    _, _, text = asyncio.run(
        request(
            endpoint,
            "POST",
            "/v1/tokens",
            json_body=token_body(role, namespace, ttl, audiences),
            params=params,
        )
    )
    if output == "kubeconfig":
        click.echo(text.rstrip("\n"))
        return
    doc = parse_json(text, endpoint.url)
    if output == "token":
        if not isinstance(doc.get("token"), str):
            raise CliError(ExitCode.PROTOCOL, f"{endpoint.url} answered without a token")
        click.echo(doc["token"])
    else:
        click.echo(text.rstrip("\n"))
