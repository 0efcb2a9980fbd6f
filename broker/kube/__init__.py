"""The broker's Kubernetes side: one Cluster per configured cluster (its API and one small module per resource),
and verification of the tokens it returns.

Knows nothing of callers, policy, HTTP or configuration: everything comes in as plain parameters.
"""

from .api import KubeApi, Transport, to_broker_error
from .cluster import Cluster
from .errors import DEFAULT_RETRY_AFTER, KubeApiError, KubeTransportError, missing_permission
from .labels import BINDING_SA_ANNOTATION, LEGACY_FOR_LABEL
from .leases import LeaseConflict
from .objects import LegacyToken, SecretRef, ServiceAccountRef, TokenResponse
from .retry import RetryPolicy
from .tokens import parse_warnings
from .transport import ClusterConfigError, InClusterFiles, Response
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
    "Cluster",
    "ClusterConfigError",
    "ClusterTokenVerifier",
    "InClusterFiles",
    "KubeApi",
    "KubeApiError",
    "KubeTransportError",
    "LeaseConflict",
    "LegacyToken",
    "Response",
    "RetryPolicy",
    "SecretRef",
    "ServiceAccountRef",
    "TokenResponse",
    "Transport",
    "VerifiedLegacyToken",
    "VerifiedToken",
    "missing_permission",
    "parse_subject",
    "parse_warnings",
    "to_broker_error",
]
