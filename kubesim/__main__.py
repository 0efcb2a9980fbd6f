"""`kube-sim` (or `python -m kubesim`): the simulator as a process, until SIGTERM/SIGINT."""

from __future__ import annotations

from pathlib import Path

import click

from kubesim.options import SimOptions
from kubesim.serve import parse_listen, run


@click.command("kube-sim")
@click.option("--listen", default="127.0.0.1:6443", show_default=True, help="HOST:PORT to serve HTTPS on.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kubesim"),
    show_default=True,
    help="Where ca.crt, ca.key, sa.key and admin.kubeconfig are written.",
)
@click.option(
    "--authorization", type=click.Choice(["rbac", "always-allow"]), default="rbac", show_default=True
)
@click.option(
    "--max-token-expiration",
    type=click.IntRange(min=0),
    default=0,
    help="Cap on TokenRequest expirationSeconds (--service-account-max-token-expiration); 0 = none.",
)
@click.option("--issuer", default="", help="Service-account issuer URL (default: the serving URL).")
@click.option("--api-audiences", default="", help="Comma-separated API audiences (default: the issuer).")
@click.option(
    "--legacy-token-delay",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Seconds before the token controller fills a legacy token Secret.",
)
@click.option(
    "--cluster-signing-duration",
    type=click.IntRange(min=600),
    default=24 * 3600,
    show_default=True,
    help="Longest certificate the CSR signer issues, in seconds (kube-controller-manager's flag).",
)
def kube_sim(
    listen: str,
    state_dir: Path,
    authorization: str,
    max_token_expiration: int,
    issuer: str,
    api_audiences: str,
    legacy_token_delay: float,
    cluster_signing_duration: int,
) -> None:
    """Serve a simulated Kubernetes API server (for tests and demos) until SIGTERM/SIGINT."""
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    options = SimOptions(
        issuer=issuer,
        api_audiences=[a.strip() for a in api_audiences.split(",") if a.strip()],
        max_token_expiration=max_token_expiration,
        legacy_token_delay=legacy_token_delay,
        cluster_signing_duration=cluster_signing_duration,
        authorization="always-allow" if authorization == "always-allow" else "rbac",
    )
    run(options, state_dir, listen, lambda line: click.echo(line, err=False))


if __name__ == "__main__":
    kube_sim()
