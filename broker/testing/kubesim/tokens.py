"""Service-account token signing keys, key ids, JWKS, and signing/validation of tokens.

INTERFACE STUB — to be implemented (see the kubesim tokens work item).
"""

from __future__ import annotations

from typing import Any


class KeyRing:
    """Signing keys of one cluster: the newest signs; older keys stay published in the JWKS until dropped."""

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> KeyRing:
        raise NotImplementedError

    def rotate(self, algorithm: str = "RS256") -> str:
        raise NotImplementedError

    def drop(self, kid: str) -> None:
        raise NotImplementedError

    def jwks(self) -> dict[str, Any]:
        raise NotImplementedError

    def signing_key_pem(self) -> bytes:
        raise NotImplementedError
