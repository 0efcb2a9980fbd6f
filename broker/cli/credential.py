"""The kubectl side: `token-broker credential` (the exec credential plugin kubectl runs), `token-broker
kubeconfig` (a kubeconfig whose users run that plugin) and `token-broker logout` (forget cached credentials).

kubectl runs the plugin once per command, so its fast path — a cached credential — imports neither asyncio
nor aiohttp: they are loaded only when the broker must be asked.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker.cli._endpoint import BrokerEndpoint, endpoint_options
from broker.cli.credential_cache import (
    CacheKey,
    CredentialCache,
    Entry,
    credential_digest,
    default_cache_dir,
    expiry_of,
)
from broker.cli.credential_refetch import kubectl_process, refused_before
from broker.cli.exit_codes import CliError, ExitCode

_CACHE_DIR = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Credential cache directory (default: $XDG_CACHE_HOME or ~/.cache, then token-broker/credentials).",
)

# -- credential (kubectl exec plugin) ---------------------------------------------------------------------------


@click.command("credential")
@endpoint_options
@click.option("--role", required=True)
@click.option("--namespace")
@click.option("--ttl")
@click.option("--audience", "audiences", multiple=True)
@click.option("--cluster", default="", help="The kubeconfig cluster this credential is for (keys the cache).")
@_CACHE_DIR
def credential(
    endpoint: BrokerEndpoint,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    cluster: str,
    cache_dir: Path | None,
) -> None:
    """kubectl exec credential plugin: print an ExecCredential.

    The credential is cached per caller (README: "The exec plugin's cache") until 60 s before it expires. When
    the kubectl process that got it runs the plugin again — what kubectl does after the API server answered
    401, e.g. once the token was revoked — a fresh one is fetched instead.
    """
    key = _cache_key(endpoint, role, namespace, ttl, audiences, cluster)
    cache = CredentialCache(cache_dir or default_cache_dir())
    process = kubectl_process()
    now = time.time()
    if key is not None:
        entry = cache.load(key)
        if entry is not None and entry.usable(datetime.now(UTC)) and not refused_before(entry, process, now):
            if process is not None and process not in entry.handed_to:
                entry.hand_to(process)
                _keep(cache, key, entry, prune=False)
            click.echo(json.dumps(entry.credential))
            return
    try:
        doc = _fetch(endpoint, role, namespace, ttl, audiences)
    except CliError:
        # whatever was cached is dead or refused: the next run asks the broker again
        if key is not None:
            cache.forget(key)
        raise
    expires = expiry_of(doc)
    if key is not None and expires is not None:
        fresh = Entry(doc, expires, now, process, [process] if process else [])
        _keep(cache, key, fresh, prune=True)
    click.echo(json.dumps(doc))


def _cache_key(
    endpoint: BrokerEndpoint,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    cluster: str,
) -> CacheKey | None:
    cert_pem = _read(endpoint.cert_file, "client certificate")
    key_pem = _read(endpoint.key_file, "client key")
    digest = credential_digest(api_key=endpoint.api_key, cert_pem=cert_pem, key_pem=key_pem)
    if digest is None:
        return None  # no credential: the broker will refuse, and nothing is cached
    return CacheKey(endpoint.url, role, namespace or "", cluster, tuple(audiences), ttl or "", digest)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path}: {exc.strerror or exc}") from None


def _fetch(
    endpoint: BrokerEndpoint, role: str, namespace: str | None, ttl: str | None, audiences: tuple[str, ...]
) -> dict[str, Any]:
    import asyncio

    from broker.cli._endpoint import request_json, token_body

    doc = asyncio.run(
        request_json(
            endpoint,
            "POST",
            "/v1/tokens",
            json_body=token_body(role, namespace, ttl, audiences),
            params={"format": "exec-credential"},
        )
    )
    status = doc.get("status")
    if doc.get("kind") != "ExecCredential" or not isinstance(status, dict) or not status.get("token"):
        raise CliError(ExitCode.PROTOCOL, f"{endpoint.url} did not answer with an ExecCredential")
    return doc


def _keep(cache: CredentialCache, key: CacheKey, entry: Entry, *, prune: bool) -> None:
    """Store (and prune) best effort: a cache that cannot be written costs a broker call, not the command."""
    try:
        cache.store(key, entry)
        if prune:
            cache.prune()
    except OSError as exc:
        click.echo(f"token-broker: warning: not caching the credential in {cache.directory}: {exc}", err=True)


# -- logout -------------------------------------------------------------------------------------------------------


@click.command("logout")
@click.option("--broker", "broker_url", help="Only the credentials of this broker URL.")
@click.option("--role", help="Only the credentials for this role.")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Only the credentials this API key or bearer token obtained (a CI job cleaning up after itself).",
)
@click.option(
    "--cert", type=click.Path(dir_okay=False, path_type=Path), help="Only this certificate's (with --key)."
)
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="The key of --cert.")
@_CACHE_DIR
def logout(
    broker_url: str | None,
    role: str | None,
    api_key_file: Path | None,
    cert: Path | None,
    key: Path | None,
    cache_dir: Path | None,
) -> None:
    """Forget the credentials the kubectl plugin cached: all of them, or those of one broker, role or caller.

    The tokens themselves stay valid until they expire; `token-broker revoke` ends one early.
    """
    from broker.cli._endpoint import read_secret_file
    from broker.cli.credential_cache import owner_tag

    owner = None
    if api_key_file is not None or cert is not None:
        api_key = read_secret_file(api_key_file, "API key file") if api_key_file is not None else None
        digest = credential_digest(
            api_key=api_key, cert_pem=_read(cert, "client certificate"), key_pem=_read(key, "client key")
        )
        owner = owner_tag(digest) if digest is not None else None
    cache = CredentialCache(cache_dir or default_cache_dir())
    removed = cache.forget_matching(broker_url, role, owner=owner)
    scope = [broker_url and f"broker {broker_url}", role and f"role {role}", owner and "this caller"]
    named = " and ".join(p for p in scope if p)
    click.echo(f"forgot {removed} cached credential(s){' of ' + named if named else ''} in {cache.directory}")


# -- kubeconfig with exec users -----------------------------------------------------------------------------------


@click.command("kubeconfig")
@endpoint_options
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default stdout)."
)
@click.option(
    "--command",
    "plugin",
    default=None,
    help="The token-broker the exec stanzas run (default: the absolute path of this one).",
)
def kubeconfig(endpoint: BrokerEndpoint, out: Path | None, plugin: str | None) -> None:
    """Write a kubeconfig with one context per role (and cluster) the caller may use; kubectl fetches a token
    through `token-broker credential` only when it needs one."""
    import asyncio
    import base64

    from broker._kits.private_files import write_private
    from broker.cli._endpoint import request_json
    from broker.render import ExecEntry, exec_kubeconfig

    roles = asyncio.run(request_json(endpoint, "GET", "/v1/roles")).get("roles", [])
    command = plugin or running_executable()
    cert, key, cacert, api_key_file = (
        endpoint.cert_file,
        endpoint.key_file,
        endpoint.ca_file,
        endpoint.api_key_file,
    )
    entries = []
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
                api_key_file=str(api_key_file.resolve()) if api_key_file else None,
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
    how = "as given by --command" if plugin else "this token-broker; change it with --command"
    click.echo(f"the contexts run {command} ({how})", err=True)


def running_executable() -> str:
    """The absolute path of the token-broker running now, as kubectl must exec it: a virtualenv's bin/ is
    rarely on the PATH kubectl inherits. Symbolic links are kept (pipx links into its own venvs)."""
    started_as = Path(sys.argv[0])
    if started_as.name == "token-broker" and started_as.is_file() and os.access(started_as, os.X_OK):
        return str(started_as.absolute())
    found = shutil.which("token-broker")
    if found is not None:
        return str(Path(found).absolute())
    raise CliError(ExitCode.USAGE, "cannot tell where token-broker is installed: pass --command PATH")
