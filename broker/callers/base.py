"""The shape every authentication method shares, free of any web framework's types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from broker.domain.identity import Caller


@dataclass(frozen=True)
class CallerRequest:
    """What an authenticator may look at: the verified peer certificate, the headers, the peer address."""

    # DER of the client certificate the TLS layer already verified against the client CA; None: none presented
    peer_cert_der: bytes | None = field(default=None, repr=False)
    # header values are credentials: kept out of repr
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    remote: str = ""

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup (HTTP field names are case-insensitive, RFC 9110 §5.1)."""
        value = self.headers.get(name)
        if value is not None:
            return value
        wanted = name.lower()
        for key, val in self.headers.items():
            if key.lower() == wanted:
                return val
        return None


class Authenticator(Protocol):
    async def authenticate(self, request: CallerRequest) -> Caller | None:
        """None: the request carries no credential of this kind, let the next authenticator try.

        Raise BrokerError 401 when it carries one of this kind that is not valid: a later authenticator must
        not get the chance to accept a request whose credential was just refused.
        """
        ...
