"""The label values of the broker's metrics: fixed vocabularies, and how a value outside one is recorded.

A value outside a vocabulary is recorded as "other", so a caller-supplied string can never mint a new series.
`broker.metrics` declares the metrics; this module says which values their labels may take, so that the
helpers, the series created at start-up and the tests draw on one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, Literal, get_args

from broker._kits.names import NamespaceMatcher, is_glob

OTHER: Final = "other"
# what a helper records for a value outside its vocabulary; callers that classify input may pass it directly
Other = Literal["other"]

Mode = Literal["token-request", "legacy-secret"]
Outcome = Literal["issued", "denied", "failed"]
# Why policy or validation said no (the audit record keeps the full reason; this is only its kind).
DenyKind = Literal[
    "unknown_role",  # also "no grant gives this role": callers cannot tell them apart, metrics need not either
    "no_grant",
    "namespace",
    "namespace_selector",
    "ttl",
    "audience",
    "invalid_request",
]
# Why an allowed issuance produced no token.
FailKind = Literal[
    "upstream_refused",  # the API server answered 4xx (502 to the caller)
    "upstream_unavailable",  # 5xx, 429, timeout, connection refused (503)
    "verification",  # the token came back but did not verify against the cluster JWKS
    "audit",  # the audit store could not be written (503)
    "internal",
]
AuthMethod = Literal["mtls", "api_key", "oidc", "kubernetes", "none"]
AuthReason = Literal[
    "missing",  # no credential presented
    "not_accepted",  # a credential of a kind this broker is not configured for (an API key, none configured)
    "malformed",
    "unknown",  # an API key or certificate subject nobody configured
    "bad_signature",
    "untrusted_issuer",
    "bad_audience",
    "expired",
    "not_yet_valid",
    "too_old",  # iat beyond the configured maximum age
    "claims",  # a required claim missing or not matching
    "revoked",  # e.g. TokenReview says the bound object is gone
    "unavailable",  # JWKS or TokenReview unreachable (the caller gets 503, still a failed authentication)
]
KubeVerb = Literal["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
KubeResource = Literal[
    "serviceaccounts",
    "serviceaccounts/token",
    "secrets",
    "namespaces",
    "leases",
    "tokenreviews",
    "selfsubjectreviews",
    "discovery",  # /.well-known/openid-configuration, /version, /api, /apis/… (broker.kube.request_labels)
    "jwks",  # /openid/v1/jwks
]
# whose signing keys: a Kubernetes API server's (token verification, TokenReview) or a trusted OIDC issuer's
JwksSource = Literal["cluster", "oidc"]
JwksOutcome = Literal["success", "not_modified", "failure"]
RunOutcome = Literal["success", "failure"]
JanitorResource = Literal["secrets", "serviceaccounts"]
CertificateKind = Literal["server", "client_ca"]
# why a delivery to an audit sink failed (broker.audit.sinks.base.FailureKind has the same values)
SinkFailureKind = Literal["connect", "tls", "timeout", "closed", "rejected", "server", "write", "store"]

DENY_KINDS: Final = frozenset(get_args(DenyKind))
FAIL_KINDS: Final = frozenset(get_args(FailKind))
AUTH_METHODS: Final = frozenset(get_args(AuthMethod))
AUTH_REASONS: Final = frozenset(get_args(AuthReason))
KUBE_VERBS: Final = frozenset(get_args(KubeVerb))
KUBE_RESOURCES: Final = frozenset(get_args(KubeResource))
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MODES: Final = frozenset(get_args(Mode))
JWKS_SOURCES: Final = frozenset(get_args(JwksSource))
JWKS_OUTCOMES: Final = frozenset(get_args(JwksOutcome))
RUN_OUTCOMES: Final = frozenset(get_args(RunOutcome))
JANITOR_RESOURCES: Final = frozenset(get_args(JanitorResource))
CERTIFICATES: Final = frozenset(get_args(CertificateKind))
SINK_FAILURES: Final = frozenset(get_args(SinkFailureKind))


def one_of(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def status_class(status: int) -> str:
    """200 → "2xx"; anything outside 100..599 → "other"."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> NamespaceMatcher:
    return NamespaceMatcher((pattern,))


def namespace_label(namespace: str, patterns: Sequence[str]) -> str:
    """The `token_namespace` label for a namespace a role allowed: the namespace itself when the role names it
    literally, else the role's glob that matched ("ci-*"). Per-pipeline namespaces (ci-1, ci-2, …) would
    otherwise add a series per pipeline forever; the role's patterns are bounded by the config."""
    if namespace in patterns and not is_glob(namespace):
        return namespace
    for pattern in patterns:
        if is_glob(pattern) and _glob(pattern).matches(namespace):
            return pattern
    return OTHER
