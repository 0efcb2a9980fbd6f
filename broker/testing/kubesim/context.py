"""What every handler of one simulated API server shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.pki import CertificateAuthority

from .options import SimOptions
from .state import Store
from .tokens import KeyRing


@dataclass
class UserInfo:
    """authentication/user.Info: who made a request."""

    username: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class SimContext:
    options: SimOptions
    store: Store
    keys: KeyRing
    ca: CertificateAuthority
    # https://host:port once the listener is bound
    server_url: str = ""

    @property
    def issuer(self) -> str:
        return self.options.issuer or self.server_url

    @property
    def api_audiences(self) -> list[str]:
        return list(self.options.api_audiences) or [self.issuer]
