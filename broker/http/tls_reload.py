"""Serving TLS whose certificate, key and client CA are re-read when the files change (cert-manager rotates
them in place), without a restart and without dropping open connections."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[float, int], ...]


def _fingerprint(paths: list[Path]) -> Fingerprint:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_mtime, st.st_size))
        except OSError:
            out.append((0.0, -1))
    return tuple(out)


class ReloadingServerTLS:
    """`context` is what the listener is given. Its SNI hook (OpenSSL calls it on every ClientHello, with or
    without a server name) moves each new handshake onto the newest context built from the files, so a
    rotated client CA replaces the old one instead of being added beside it."""

    def __init__(
        self,
        paths: list[Path],
        build: Callable[[], ssl.SSLContext],
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self._paths = paths
        self._build = build
        self._on_reload = on_reload
        self._current = build()
        self._seen = _fingerprint(paths)
        self.context = build()
        self.context.sni_callback = self._select

    def _select(self, sock: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> None:
        sock.context = self._current

    def check(self) -> bool:
        """Rebuild when a file changed; a broken new set (half-written rotation) keeps the old one."""
        seen = _fingerprint(self._paths)
        if seen == self._seen:
            return False
        try:
            fresh = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("TLS files changed but cannot be loaded; keeping the previous ones: %s", exc)
            return False
        self._current = fresh
        self._seen = seen
        log.info("reloaded TLS certificate, key and client CA")
        if self._on_reload is not None:
            self._on_reload()
        return True

    async def watch(self, interval: float) -> None:
        """Poll the files forever (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(interval)
            self.check()
