"""Static API keys, configured only as SHA-256 digests so the config file never holds a usable key."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from hmac import compare_digest

from broker.callers.base import CallerRequest
from broker.callers.bearer import bearer_value, looks_like_jwt
from broker.domain.errors import ErrorKind, unauthenticated
from broker.domain.identity import Caller

API_KEY_HEADER = "X-API-Key"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class _Key:
    name: str
    digest: bytes = field(repr=False)
    groups: tuple[str, ...]


class ApiKeyAuthenticator:
    """`X-API-Key: <key>` or `Authorization: Bearer <key>` → Caller(user=key name, groups, method="api-key")."""

    method = "api-key"

    def __init__(self, keys: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        """keys: (name, SHA-256 hex digest of the key, groups) for each configured key."""
        parsed: list[_Key] = []
        names: set[str] = set()
        digests: set[bytes] = set()
        for name, hex_digest, groups in keys:
            if not name:
                raise ValueError("API key without a name")
            if _HEX_DIGEST.fullmatch(hex_digest) is None:
                raise ValueError(f"API key {name!r}: sha256 must be 64 hexadecimal characters")
            digest = bytes.fromhex(hex_digest)
            if name in names:
                raise ValueError(f"API key name {name!r} is configured twice")
            if digest in digests:
                raise ValueError(f"API key {name!r} has the same sha256 as another key")
            names.add(name)
            digests.add(digest)
            parsed.append(_Key(name, digest, tuple(groups)))
        self._keys: tuple[_Key, ...] = tuple(parsed)

    async def authenticate(self, request: CallerRequest) -> Caller | None:
        presented = request.header(API_KEY_HEADER)
        if presented is None:
            presented = bearer_value(request.header("Authorization"))
            if presented is None or looks_like_jwt(presented):
                return None
        presented = presented.strip()
        if not presented:
            raise unauthenticated(ErrorKind.CREDENTIAL_MALFORMED, "empty API key")
        key = self._match(hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest())
        if key is None:
            raise unauthenticated(ErrorKind.CREDENTIAL_UNKNOWN, "unknown API key")
        return Caller(user=key.name, groups=key.groups, method=self.method)

    def _match(self, digest: bytes) -> _Key | None:
        # Compare against every key, equal-length digests, no early exit: neither the time taken nor the
        # number of comparisons depends on which key (if any) matched.
        found: _Key | None = None
        for key in self._keys:
            if compare_digest(digest, key.digest):
                found = key
        return found
