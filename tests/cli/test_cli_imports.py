"""kubectl runs `token-broker credential` once per command: its module must not load asyncio or aiohttp (they
are most of a cold start), only the commands that ask the broker do, when they ask."""

from __future__ import annotations

import subprocess
import sys


def test_the_credential_plugin_loads_neither_asyncio_nor_aiohttp() -> None:
    probe = "import sys, broker.cli.credential; print(sorted({'asyncio', 'aiohttp'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
