"""[auth]: how callers authenticate (client certificates, API keys, OIDC, TokenReview) and who operates."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr

from .fields import (
    Audience,
    ClaimName,
    ConfigPath,
    Duration,
    Name,
    NonNegativeFloat,
    Principal,
    Section,
    SigningAlgorithm,
    TrustedUrl,
    _sha256_hex,
)
from .grants import RateLimitConfig


class MtlsConfig(Section):
    # Defaults to true when server.client_ca is set, false otherwise.
    enabled: StrictBool = True
    # Fixed like kube-apiserver: Subject CN is the user, each O is a group.
    user_from: Literal["cn"] = "cn"
    groups_from: Literal["o"] = "o"


class ApiKeyConfig(Section):
    # The caller's user name
    name: Principal
    sha256: Annotated[StrictStr, AfterValidator(_sha256_hex)]
    groups: tuple[Principal, ...] = ()


class OidcIssuerConfig(Section):
    """One trusted OIDC issuer ([[auth.oidc]]): a CI system that hands its jobs signed identity tokens."""

    # the exact `iss` of its tokens; discovery is read from <issuer>/.well-known/openid-configuration
    issuer: TrustedUrl
    # the `aud` a token must carry (set it in the CI job, e.g. GitLab `id_tokens: {aud: ...}`)
    audience: Audience
    # None: the jwks_uri of the discovery document
    jwks_uri: TrustedUrl | None = None
    # CA bundle for the issuer's TLS certificate (None: the system trust store)
    ca_file: ConfigPath | None = None
    algorithms: Annotated[tuple[SigningAlgorithm, ...], Field(min_length=1)] = ("RS256", "ES256")
    # clock skew allowed on exp, nbf and iat (kube-apiserver allows 60 s)
    leeway_seconds: Annotated[StrictInt, Field(ge=0, le=600)] = 60
    # a token issued (iat) longer ago than this is refused even if it has not expired
    max_token_age: Duration = 3600
    username_claim: ClaimName = "sub"
    # None: "<issuer>#", unless username_claim is "email" (kube-apiserver's --oidc-username-prefix default);
    # "" for none
    username_prefix: StrictStr | None = None
    # None: no groups from the token
    groups_claim: ClaimName | None = None
    groups_prefix: StrictStr = ""
    # groups every caller of this issuer is in (for grants that also bind claims)
    groups: tuple[Principal, ...] = ()

    @property
    def effective_username_prefix(self) -> str:
        if self.username_prefix is not None:
            return self.username_prefix
        return "" if self.username_claim == "email" else f"{self.issuer}#"


class KubernetesAuthConfig(Section):
    """[auth.kubernetes]: bearer service-account tokens checked with a TokenReview."""

    enabled: StrictBool = False
    # the configured cluster that reviews tokens (None: the only one)
    cluster: Name | None = None
    # the audiences a caller's token must be issued for (`kubectl create token --audience token-broker`)
    audiences: Annotated[tuple[Audience, ...], Field(min_length=1)] = ("token-broker",)
    # how long a review (either answer) is reused, keyed by the token's SHA-256; 0: not cached
    cache_seconds: NonNegativeFloat = 10.0


class AuthConfig(Section):
    # Callers in one of these groups may list every issuance and audit event and revoke anyone's token; every
    # other caller sees and revokes only its own.
    operator_groups: tuple[Principal, ...] = ("token-broker:operators",)
    mtls: MtlsConfig = Field(default_factory=MtlsConfig)
    api_keys: tuple[ApiKeyConfig, ...] = ()
    oidc: tuple[OidcIssuerConfig, ...] = ()
    kubernetes: KubernetesAuthConfig = Field(default_factory=KubernetesAuthConfig)
    # per caller, for grants without a rate_limit of their own (and requests no grant matches)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
