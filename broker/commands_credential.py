"""The kubectl side: `token-broker credential` (the exec credential plugin kubectl runs) and
`token-broker kubeconfig` (a kubeconfig whose users run that plugin)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import click

from broker import credential_cache
from broker.client import BrokerEndpoint, parse_json, request, request_json
from broker.commands import token_body
from broker.commands_endpoint import endpoint_options
from broker.exit_codes import CliError, ExitCode

# -- credential (kubectl exec plugin) ---------------------------------------------------------------------------


@click.command("credential")
@endpoint_options
@click.option("--role", required=True)
@click.option("--namespace")
@click.option("--ttl")
@click.option("--audience", "audiences", multiple=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Token cache directory.")
def credential(
    endpoint: BrokerEndpoint,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    cache_dir: Path | None,
) -> None:
    """kubectl exec credential plugin: print an ExecCredential, cached until shortly before it expires."""
    cert = endpoint.cert_file
    identity = str(cert.resolve()) if cert else ("api-key" if endpoint.api_key else "anonymous")
    cache_file = (cache_dir or credential_cache.default_cache_dir()) / (
        credential_cache.cache_key(
            endpoint.url, role, namespace or "", ttl or "", ",".join(audiences), identity
        )
        + ".json"
    )
    cached = credential_cache.load(cache_file)
    if cached is not None:
        click.echo(json.dumps(cached))
        return
    _, _, text = asyncio.run(
        request(
            endpoint,
            "POST",
            "/v1/tokens",
            json_body=token_body(role, namespace, ttl, audiences),
            params={"format": "exec-credential"},
        )
    )
    doc = parse_json(text, endpoint.url)
    if doc.get("status", {}).get("expirationTimestamp"):
        credential_cache.store(cache_file, doc)
    click.echo(json.dumps(doc))


# -- kubeconfig with exec users -----------------------------------------------------------------------------------


@click.command("kubeconfig")
@endpoint_options
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default stdout)."
)
@click.option("--command", "plugin", default=None, help="Path of token-broker for the exec stanza.")
def kubeconfig(endpoint: BrokerEndpoint, out: Path | None, plugin: str | None) -> None:
    """Write a kubeconfig with one context per role (and cluster) the caller may use; kubectl fetches a token
    through `token-broker credential` only when it needs one."""
    from broker.pki import write_private
    from broker.render import ExecEntry, exec_kubeconfig

    roles = asyncio.run(request_json(endpoint, "GET", "/v1/roles")).get("roles", [])
    command = plugin or shutil.which("token-broker") or "token-broker"
    entries = []
    cert, key, cacert = endpoint.cert_file, endpoint.key_file, endpoint.ca_file
    for role in roles:
        literal = [n for n in role.get("namespaces", []) if not any(c in n for c in "*?[")]
        ca_data = role.get("cluster_ca_data")
        entries.append(
            ExecEntry(
                role=role["name"],
                cluster=role["cluster"],
                server_url=role["cluster_server"],
                ca_pem=base64.b64decode(ca_data) if ca_data else None,
                broker_url=endpoint.url,
                namespace=literal[0] if literal else None,
                client_cert=str(cert.resolve()) if cert else None,
                client_key=str(key.resolve()) if key else None,
                broker_ca=str(cacert.resolve()) if cacert else None,
                command=command,
            )
        )
    if not entries:
        raise CliError(ExitCode.FAILED, "this caller may use no role")
    document = exec_kubeconfig(entries)
    if out is None:
        click.echo(document.rstrip("\n"))
    else:
        write_private(out, document.encode())
        click.echo(f"wrote {out} with contexts: {', '.join(e.name for e in entries)}", err=True)


COMMANDS = [credential, kubeconfig]
