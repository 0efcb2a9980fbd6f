"""token-broker command line."""

from __future__ import annotations

import click

from broker import __version__


@click.group()
@click.version_option(__version__, prog_name="token-broker")
def main() -> None:
    """Short-lived, verified, audited Kubernetes service-account tokens."""
