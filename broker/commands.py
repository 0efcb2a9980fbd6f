"""The broker's own CLI commands (the simulator's `kube-sim` lives beside them in cli.py; the kubectl plugin
and exec kubeconfigs in commands_credential.py, operators' commands in commands_ops.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from broker.client import BrokerEndpoint, parse_json, request
from broker.commands_endpoint import endpoint_options
from broker.exit_codes import CliError, ExitCode

if TYPE_CHECKING:
    from broker._kits.pki import CertificateAuthority


def token_body(
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
    from broker._kits.pki import CertificateAuthority, write_private

    ca = CertificateAuthority.generate(name, days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ca.crt").write_bytes(ca.cert_pem)
    write_private(out_dir / "ca.key", ca.key_pem)
    click.echo(f"wrote {out_dir / 'ca.crt'} and {out_dir / 'ca.key'}")


def _load_ca(ca_dir: Path) -> CertificateAuthority:
    from broker._kits.pki import CertificateAuthority

    try:
        return CertificateAuthority.load(ca_dir / "ca.crt", ca_dir / "ca.key")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(ExitCode.LOCAL_FILE, f"CA in {ca_dir} (ca.crt, ca.key): {reason}") from None


@pki.command("client")
@click.option("--ca-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True)
@click.option("--cn", "common_name", required=True, help="User name.")
@click.option("--group", "groups", multiple=True, help="A group (Subject O); repeat for several.")
@click.option("--days", default=30, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def pki_client(ca_dir: Path, common_name: str, groups: tuple[str, ...], days: int, out_dir: Path) -> None:
    """Write CN.crt and CN.key: a caller certificate."""
    from broker._kits.pki import write_private

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
    from broker._kits.pki import write_private

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
        _config_problems(exc)
    except ValueError as exc:
        raise CliError(ExitCode.USAGE, str(exc)) from None
    try:
        asyncio.run(serve_until_signalled(broker))
    except (OSError, ClusterConfigError) as exc:
        # a port in use, unreadable TLS files, an unusable kubeconfig: say which, no traceback
        raise CliError(ExitCode.FAILED, f"cannot start: {exc}") from None


def _config_problems(exc: Exception) -> NoReturn:
    """A ConfigError is one `file: key.path: problem` line per problem, printed as they are."""
    click.echo(str(exc), err=True)
    sys.exit(ExitCode.USAGE)


@click.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--syntax-only",
    is_flag=True,
    help="Check the file alone, not the files it names (for a config checked away from where it runs).",
)
def config_check(path: Path, syntax_only: bool) -> None:
    """Validate a config file and load every file it names (kubeconfigs, certificates, keys, CA bundles) as
    `serve` would; prints each problem as `file: key.path: problem` and exits 2 when there is one."""
    from broker.app.preflight import check_files
    from broker.settings import ConfigError, load_config

    try:
        cfg = load_config(path)
        if not syntax_only:
            check_files(path, cfg)
    except ConfigError as exc:
        _config_problems(exc)
    files = "" if syntax_only else ", every file it names loads"
    click.echo(
        f"{path}: OK — {len(cfg.clusters)} cluster(s), {len(cfg.roles)} role(s), {len(cfg.grants)} grant(s){files}"
    )


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
    from broker.demo import run_demo
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
