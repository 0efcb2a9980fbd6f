"""`token-broker config check`: validate a config file and every file it names, as `serve` would."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.exit_codes import config_problems


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
        config_problems(exc)
    files = "" if syntax_only else ", every file it names loads"
    click.echo(
        f"{path}: OK — {len(cfg.clusters)} cluster(s), {len(cfg.roles)} role(s), {len(cfg.grants)} grant(s){files}"
    )
