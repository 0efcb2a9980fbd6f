"""Tries each authentication method in order; the first that recognises its kind of credential decides."""

from __future__ import annotations

from collections.abc import Sequence

from broker.callers.base import Authenticator, CallerRequest
from broker.errors import unauthenticated
from broker.identity import Caller


class AuthenticatorChain:
    """An ordered, replaceable set of authenticators.

    `replace` swaps the whole tuple in one assignment (a SIGHUP reload): a request already being
    authenticated finishes with the set it started with, never with a mix of old and new.
    """

    def __init__(self, authenticators: Sequence[Authenticator], realm: str = "token-broker") -> None:
        self._authenticators: tuple[Authenticator, ...] = tuple(authenticators)
        self._realm = realm

    @property
    def authenticators(self) -> tuple[Authenticator, ...]:
        return self._authenticators

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate value every 401 carries (RFC 9110 §11.6.1, RFC 6750 §3)."""
        return f'Bearer realm="{self._realm}"'

    def replace(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = tuple(authenticators)

    async def authenticate(self, request: CallerRequest) -> Caller:
        """The caller, or BrokerError 401: no credential at all, or the first one offered was refused."""
        for authenticator in self._authenticators:
            caller = await authenticator.authenticate(request)
            if caller is not None:
                return caller
        raise unauthenticated(
            "no credential: present a client certificate, an API key, or a bearer token",
            reason="no credential recognised by any authenticator",
        )
