"""Who is calling: one module per authentication method, and the chain that tries them in order."""

from broker.callers.api_key import ApiKeyAuthenticator
from broker.callers.base import Authenticator, CallerRequest
from broker.callers.chain import AuthenticatorChain
from broker.callers.mtls import MtlsAuthenticator

__all__ = [
    "ApiKeyAuthenticator",
    "Authenticator",
    "AuthenticatorChain",
    "CallerRequest",
    "MtlsAuthenticator",
]
