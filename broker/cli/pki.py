"""`token-broker pki ca|client|server`: the certificates a small installation needs, made locally."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.cli.exit_codes import CliError, ExitCode

if TYPE_CHECKING:
    from broker._kits.pki import CertificateAuthority


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
