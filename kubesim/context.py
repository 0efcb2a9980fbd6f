"""What every handler of one simulated API server shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker._kits.pki import CertificateAuthority

from .auth_cache import AuthCache
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
    # successful bearer-token authentications (see SimOptions.auth_cache_seconds)
    auth_cache: AuthCache = field(default_factory=AuthCache)

    @property
    def issuer(self) -> str:
        return self.options.issuer or self.server_url

    @property
    def api_audiences(self) -> list[str]:
        return list(self.options.api_audiences) or [self.issuer]

    @property
    def jwks_uri(self) -> str:
        # --service-account-jwks-uri, else https://<external address>/openid/v1/jwks (not the issuer's host)
        return self.options.jwks_uri or self.server_url + "/openid/v1/jwks"

    def rotate_signing_key(self, algorithm: str = "RS256") -> str:
        """A new key signs new tokens; tokens of older keys stay valid while those keys are in the ring."""
        return self.keys.rotate(algorithm)

    def drop_signing_key(self, kid: str) -> None:
        """Tokens signed by `kid` stop authenticating (no cached result survives) and it leaves the JWKS."""
        self.keys.drop(kid)
        self.auth_cache.clear()
