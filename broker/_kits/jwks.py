"""Token signing keys (a cluster's, or a trusted OIDC issuer's), fetched by whoever owns them and cached.

Never PyJWKClient: it fetches with urllib and blocks the event loop (KUBE-SEMANTICS.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import jwt
from jwt import PyJWK, PyJWKSet

from .jwt import ALLOWED_ALGORITHMS
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[tuple[dict[str, Any], float | None]]]
Outcome = Literal["success", "failure"]

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class UnusableKeySet(ValueError):
    """The fetched document is not a usable JSON Web Key Set (the default `refused` error)."""


def parse_max_age(cache_control: str | None) -> float | None:
    """`max-age` of a Cache-Control header; `no-store`/`no-cache` → 0; absent → None."""
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


class JwksCache:
    """Keys by kid, cached for the server's Cache-Control max-age clamped to [min_ttl, max_ttl].

    An unknown kid triggers a refetch at most once per `refetch_cooldown` (a token from a key rotated in
    since the last fetch); concurrent refetches collapse into one. When a refresh fails after the cache
    expired, the old keys keep verifying for up to `max_stale` seconds more: they are still the cluster's
    keys, and a blip of the discovery endpoint should not stop issuance. A kid that is unknown and cannot
    be refetched fails with the fetch's error (503).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        min_ttl: float = 60.0,
        max_ttl: float = 3600.0,
        refetch_cooldown: float = 10.0,
        max_stale: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        label: str = "the cluster's",
        on_refresh: Callable[[Outcome], None] | None = None,
        refused: Callable[[str], Exception] = UnusableKeySet,
    ) -> None:
        """label: whose key set this is, for error messages ("the cluster's", "issuer https://…'s").
        on_refresh: told the outcome of every fetch (once per fetch, not per waiter), for metrics.
        refused: the error raised for a document that is not a usable key set, given the reason."""
        self._fetch = fetch
        self._label = label
        self._on_refresh = on_refresh
        self._refused = refused
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._cooldown = refetch_cooldown
        self._max_stale = max_stale
        self._clock = clock
        self._raw: dict[str, Mapping[str, Any]] = {}
        self._keys: dict[tuple[str, str], PyJWK] = {}
        self._fetched_at: float | None = None
        self._expires_at = 0.0
        self._flight: SingleFlight[str, None] = SingleFlight()
        self.fetches = 0

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._raw)

    async def refresh(self) -> None:
        """Fetch the key set now (collapsed with any refresh already running)."""
        await self._flight.do("jwks", self._refresh)

    async def _refresh(self) -> None:
        # counted once per fetch, not per waiter: concurrent refreshes share this one
        try:
            document, max_age = await self._fetch()
        except Exception:
            self._report("failure")
            raise
        self.fetches += 1
        try:
            # validates every key; raises when none is usable
            keyset = PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            self._report("failure")
            raise self._refused(f"{self._label} JSON Web Key Set is unusable: {exc}") from None
        raw: dict[str, Mapping[str, Any]] = {}
        for entry in document.get("keys", []):
            if isinstance(entry, dict) and isinstance(entry.get("kid"), str):
                raw[entry["kid"]] = entry
        keys: dict[tuple[str, str], PyJWK] = {}
        for key in keyset.keys:
            entry = raw.get(key.key_id or "")
            if entry is not None and _compatible(entry, key.algorithm_name):
                keys[(key.key_id or "", key.algorithm_name)] = key
        now = self._clock()
        ttl = self._max_ttl if max_age is None else min(self._max_ttl, max(self._min_ttl, max_age))
        self._raw, self._keys = raw, keys
        self._fetched_at, self._expires_at = now, now + ttl
        self._report("success")

    def _report(self, outcome: Outcome) -> None:
        if self._on_refresh is not None:
            self._on_refresh(outcome)

    async def key(self, kid: str, alg: str) -> PyJWK | None:
        """The verification key for (kid, alg), or None when the cluster does not publish it for that alg."""
        now = self._clock()
        if self._fetched_at is None:
            await self.refresh()
        elif now >= self._expires_at:
            try:
                await self.refresh()
            except Exception:
                if now >= self._expires_at + self._max_stale:
                    raise
                log.warning(
                    "JWKS refresh failed; verifying with keys fetched %.0f s ago", now - self._fetched_at
                )
        found = self._lookup(kid, alg)
        if (
            found is None
            and kid not in self._raw
            and self._fetched_at is not None
            and self._clock() - self._fetched_at >= self._cooldown
        ):
            await self.refresh()
            found = self._lookup(kid, alg)
        return found

    def _lookup(self, kid: str, alg: str) -> PyJWK | None:
        if alg not in ALLOWED_ALGORITHMS:
            return None
        cached = self._keys.get((kid, alg))
        if cached is not None:
            return cached
        raw = self._raw.get(kid)
        if raw is None or not _compatible(raw, alg):
            return None
        try:
            key = PyJWK(dict(raw), algorithm=alg)
        except jwt.PyJWTError:
            return None
        self._keys[(kid, alg)] = key
        return key


def _compatible(jwk: Mapping[str, Any], alg: str) -> bool:
    """May this JWK verify a token signed with `alg`? A JWK without "alg" serves any algorithm of its key
    type; one with "alg" only that one. Encryption keys and symmetric keys never."""
    if (
        alg not in ALLOWED_ALGORITHMS
        or jwk.get("alg") not in (None, alg)
        or jwk.get("use") not in (None, "sig")
    ):
        return False
    kty = jwk.get("kty")
    if alg.startswith("RS"):
        return kty == "RSA"
    return kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
