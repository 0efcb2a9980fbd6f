"""The `token-broker audit` group; its commands live one file each beside this one."""

from __future__ import annotations

import click


@click.group("audit")
def audit() -> None:
    """Who obtained which token, when, from where, until when — and what became of it."""
