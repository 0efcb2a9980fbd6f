"""The token authentication cache: kube-apiserver keeps successful bearer-token results for a short TTL
(pkg/kubeapiserver/authenticator: --authentication-token-success-cache-ttl 10s), so revocation lags by it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any


def cache_key(token: str, audiences: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    # the token itself is never kept, only its digest
    return hashlib.sha256(token.encode("utf-8")).hexdigest(), tuple(audiences)


class AuthCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        now = self._clock()
        # drop stale entries now and then so a long run does not grow without bound
        if len(self._entries) > 4096:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        self._entries[key] = (now + ttl, value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
