"""The broker's Kubernetes side: one ClusterClient per cluster, and verification of the tokens it returns.

Knows nothing of callers, policy, HTTP or configuration: everything comes in as plain parameters.
"""

from .client import BINDING_SA_ANNOTATION, LEGACY_FOR_LABEL, ClusterClient, parse_warnings
from .errors import DEFAULT_RETRY_AFTER, KubeApiError, KubeTransportError, missing_permission, to_broker_error
from .objects import LegacyToken, SecretRef, ServiceAccountRef, TokenResponse
from .retry import RetryPolicy
from .transport import ClusterConfigError, InClusterFiles
from .verify import (
    LEGACY_ISSUER,
    ClusterTokenVerifier,
    VerifiedLegacyToken,
    VerifiedToken,
    parse_subject,
)

__all__ = [
    "BINDING_SA_ANNOTATION",
    "DEFAULT_RETRY_AFTER",
    "LEGACY_FOR_LABEL",
    "LEGACY_ISSUER",
    "ClusterClient",
    "ClusterConfigError",
    "ClusterTokenVerifier",
    "InClusterFiles",
    "KubeApiError",
    "KubeTransportError",
    "LegacyToken",
    "RetryPolicy",
    "SecretRef",
    "ServiceAccountRef",
    "TokenResponse",
    "VerifiedLegacyToken",
    "VerifiedToken",
    "missing_permission",
    "parse_subject",
    "parse_warnings",
    "to_broker_error",
]
