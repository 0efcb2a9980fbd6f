"""The broker's own CLI commands (the simulator's `kube-sim` lives beside them in cli.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from broker import credential_cache
from broker.client import BrokerClientError, BrokerEndpoint, request
from broker.pki import CertificateAuthority, write_private

# -- shared options ---------------------------------------------------------------------------------------------


def endpoint_options(fn: Any) -> Any:
    """How a client reaches and authenticates to the broker: a client certificate or an API key."""
    options = [
        click.option("--broker", "broker_url", required=True, envvar="TOKEN_BROKER_URL", help="Broker URL."),
        click.option(
            "--cacert", type=click.Path(dir_okay=False, path_type=Path), help="CA of the broker's TLS."
        ),
        click.option(
            "--cert", type=click.Path(dir_okay=False, path_type=Path), help="Client certificate (PEM)."
        ),
        click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="Client key (PEM)."),
        click.option(
            "--api-key-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding an API key (or set TOKEN_BROKER_API_KEY). Never pass a key as an argument.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_endpoint(
    broker_url: str, cacert: Path | None, cert: Path | None, key: Path | None, api_key_file: Path | None
) -> BrokerEndpoint:
    api_key = os.environ.get("TOKEN_BROKER_API_KEY")
    if api_key_file is not None:
        api_key = api_key_file.read_text().strip()
    return BrokerEndpoint(broker_url, ca_file=cacert, cert_file=cert, key_file=key, api_key=api_key or None)


def _fail(exc: BrokerClientError) -> None:
    click.echo(f"token-broker: {exc}", err=True)
    sys.exit(1)


def _token_body(
    role: str, namespace: str | None, ttl: str | None, audiences: tuple[str, ...]
) -> dict[str, Any]:
    body: dict[str, Any] = {"role": role}
    if namespace:
        body["namespace"] = namespace
    if ttl:
        body["ttl"] = ttl
    if audiences:
        body["audiences"] = list(audiences)
    return body


# -- issue ------------------------------------------------------------------------------------------------------


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
    broker_url: str,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
    api_key_file: Path | None,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    output: str,
) -> None:
    """Ask the broker for a token and print it."""
    endpoint = make_endpoint(broker_url, cacert, cert, key, api_key_file)
    params = {"format": output} if output in ("kubeconfig", "exec-credential") else None
    try:
        _, _, text = asyncio.run(
            request(
                endpoint,
                "POST",
                "/v1/tokens",
                json_body=_token_body(role, namespace, ttl, audiences),
                params=params,
            )
        )
    except BrokerClientError as exc:
        _fail(exc)
        return
    if output == "token":
        click.echo(json.loads(text)["token"])
    else:
        click.echo(text.rstrip("\n"))


# -- credential (kubectl exec plugin) ---------------------------------------------------------------------------


@click.command("credential")
@endpoint_options
@click.option("--role", required=True)
@click.option("--namespace")
@click.option("--ttl")
@click.option("--audience", "audiences", multiple=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Token cache directory.")
def credential(
    broker_url: str,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
    api_key_file: Path | None,
    role: str,
    namespace: str | None,
    ttl: str | None,
    audiences: tuple[str, ...],
    cache_dir: Path | None,
) -> None:
    """kubectl exec credential plugin: print an ExecCredential, cached until shortly before it expires."""
    endpoint = make_endpoint(broker_url, cacert, cert, key, api_key_file)
    identity = str(cert.resolve()) if cert else ("api-key" if endpoint.api_key else "anonymous")
    cache_file = (cache_dir or credential_cache.default_cache_dir()) / (
        credential_cache.cache_key(
            broker_url, role, namespace or "", ttl or "", ",".join(audiences), identity
        )
        + ".json"
    )
    cached = credential_cache.load(cache_file)
    if cached is not None:
        click.echo(json.dumps(cached))
        return
    try:
        _, _, text = asyncio.run(
            request(
                endpoint,
                "POST",
                "/v1/tokens",
                json_body=_token_body(role, namespace, ttl, audiences),
                params={"format": "exec-credential"},
            )
        )
    except BrokerClientError as exc:
        _fail(exc)
        return
    doc = json.loads(text)
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
def kubeconfig(
    broker_url: str,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
    api_key_file: Path | None,
    out: Path | None,
    plugin: str | None,
) -> None:
    """Write a kubeconfig with one context per role (and cluster) the caller may use; kubectl fetches a token
    through `token-broker credential` only when it needs one."""
    from broker.render import ExecEntry, exec_kubeconfig

    endpoint = make_endpoint(broker_url, cacert, cert, key, api_key_file)
    try:
        _, _, text = asyncio.run(request(endpoint, "GET", "/v1/roles"))
    except BrokerClientError as exc:
        _fail(exc)
        return
    roles = json.loads(text).get("roles", [])
    command = plugin or shutil.which("token-broker") or "token-broker"
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
                broker_url=broker_url,
                namespace=literal[0] if literal else None,
                client_cert=str(cert.resolve()) if cert else None,
                client_key=str(key.resolve()) if key else None,
                broker_ca=str(cacert.resolve()) if cacert else None,
                command=command,
            )
        )
    if not entries:
        click.echo("token-broker: this caller may use no role", err=True)
        sys.exit(1)
    document = exec_kubeconfig(entries)
    if out is None:
        click.echo(document.rstrip("\n"))
    else:
        write_private(out, document.encode())
        click.echo(f"wrote {out} with contexts: {', '.join(e.name for e in entries)}", err=True)


# -- pki --------------------------------------------------------------------------------------------------------


@click.group("pki")
def pki() -> None:
    """Make a client CA and caller certificates (CN = user, O = groups)."""


@pki.command("ca")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--name", default="token-broker client CA", show_default=True)
@click.option("--days", default=3650, show_default=True)
def pki_ca(out_dir: Path, name: str, days: int) -> None:
    """Write ca.crt and ca.key (0600)."""
    ca = CertificateAuthority.generate(name, days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ca.crt").write_bytes(ca.cert_pem)
    write_private(out_dir / "ca.key", ca.key_pem)
    click.echo(f"wrote {out_dir / 'ca.crt'} and {out_dir / 'ca.key'}")


def _load_ca(ca_dir: Path) -> CertificateAuthority:
    return CertificateAuthority.load(ca_dir / "ca.crt", ca_dir / "ca.key")


@pki.command("client")
@click.option("--ca-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True)
@click.option("--cn", "common_name", required=True, help="User name.")
@click.option("--group", "groups", multiple=True, help="A group (Subject O); repeat for several.")
@click.option("--days", default=30, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def pki_client(ca_dir: Path, common_name: str, groups: tuple[str, ...], days: int, out_dir: Path) -> None:
    """Write CN.crt and CN.key: a caller certificate."""
    issued = _load_ca(ca_dir).issue_client_cert(common_name, list(groups), days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{common_name}.crt").write_bytes(issued.cert_pem)
    write_private(out_dir / f"{common_name}.key", issued.key_pem)
    click.echo(f"wrote {out_dir / (common_name + '.crt')} and {out_dir / (common_name + '.key')}")


@pki.command("server")
@click.option("--ca-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True)
@click.option("--host", "hosts", multiple=True, required=True, help="DNS name or IP; repeat for several.")
@click.option("--days", default=365, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def pki_server(ca_dir: Path, hosts: tuple[str, ...], days: int, out_dir: Path) -> None:
    """Write server.crt and server.key for the broker's TLS listener."""
    issued = _load_ca(ca_dir).issue_server_cert(list(hosts), days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "server.crt").write_bytes(issued.cert_pem)
    write_private(out_dir / "server.key", issued.key_pem)
    click.echo(f"wrote {out_dir / 'server.crt'} and {out_dir / 'server.key'}")


# -- serve, config check, demo ------------------------------------------------------------------------------------


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--log-format", type=click.Choice(["auto", "json", "text"]), default="auto", show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
def serve(config_path: Path, log_format: str, log_level: str) -> None:
    """Run the broker until SIGTERM/SIGINT; SIGHUP reloads roles, grants and callers."""
    from broker.app import Broker, serve_until_signalled
    from broker.config import ConfigError, load_config
    from broker.http.request_id import RequestIdLogFilter
    from broker.kube.transport import ClusterConfigError
    from broker.logs import configure

    configure(log_level, log_format, [RequestIdLogFilter()])
    try:
        config = load_config(config_path)
        broker = Broker(config_path, config)
    except (ConfigError, ValueError) as exc:
        click.echo(f"token-broker: {exc}", err=True)
        sys.exit(2)
    try:
        asyncio.run(serve_until_signalled(broker))
    except (OSError, ClusterConfigError) as exc:
        # a port in use, unreadable TLS files, an unusable kubeconfig: say which, no traceback
        click.echo(f"token-broker: cannot start: {exc}", err=True)
        sys.exit(1)


@click.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate a config file; prints every problem with its key, exits 2 when there is one."""
    from broker.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo(
        f"{path}: OK — {len(cfg.clusters)} cluster(s), {len(cfg.roles)} role(s), {len(cfg.grants)} grant(s)"
    )


@click.command("demo")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".demo"))
def demo(state_dir: Path) -> None:
    """Run a Kubernetes API simulator and a broker in front of it, with a demo caller certificate."""
    from broker.demo import run_demo
    from broker.http.request_id import RequestIdLogFilter
    from broker.logs import configure

    configure("WARNING", "text", [RequestIdLogFilter()])
    asyncio.run(run_demo(state_dir))


COMMANDS = [serve, demo, issue, credential, kubeconfig, pki, config_group]
