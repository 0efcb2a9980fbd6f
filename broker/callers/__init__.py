"""Who is calling: one module per authentication method, and the chain that tries them in order."""

from broker.callers.api_key import ApiKeyAuthenticator
from broker.callers.base import Authenticator, CallerRequest
from broker.callers.chain import AuthenticatorChain
from broker.callers.json_fetch import JsonFetcher
from broker.callers.kubernetes import TokenReviewAuthenticator, TokenReviewer
from broker.callers.mtls import MtlsAuthenticator
from broker.callers.oidc import OidcAuthenticator, OidcIssuer, OidcSettings

__all__ = [
    "ApiKeyAuthenticator",
    "Authenticator",
    "AuthenticatorChain",
    "CallerRequest",
    "JsonFetcher",
    "MtlsAuthenticator",
    "OidcAuthenticator",
    "OidcIssuer",
    "OidcSettings",
    "TokenReviewAuthenticator",
    "TokenReviewer",
]
