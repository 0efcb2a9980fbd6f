"""Claims of service-account tokens (pkg/serviceaccount/claims.go and legacy.go) and the user they name."""

from __future__ import annotations

import uuid
from typing import Any

from .state import Obj

LEGACY_ISSUER = "kubernetes/serviceaccount"
USERNAME_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"

# user.Info extra keys (staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go)
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"

# claims.go: kubelet asks for 3607 s; with --service-account-extend-token-expiration such a pod-bound token
# lives a year and carries `warnafter` at the asked expiry
WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS = 60 * 60 + 7
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60

# legacy.go
LEGACY_NAMESPACE_CLAIM = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET_NAME_CLAIM = "kubernetes.io/serviceaccount/secret.name"
LEGACY_SA_NAME_CLAIM = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID_CLAIM = "kubernetes.io/serviceaccount/service-account.uid"


def make_username(namespace: str, name: str) -> str:
    return f"{USERNAME_PREFIX}{namespace}:{name}"


def group_names(namespace: str) -> list[str]:
    # MakeGroupNames, plus the group every authenticated request gets (AuthenticatedGroupAdder)
    return [ALL_SERVICE_ACCOUNTS_GROUP, f"system:serviceaccounts:{namespace}", AUTHENTICATED_GROUP]


def credential_id_for_jti(jti: str) -> str:
    return f"JTI={jti}" if jti else ""


def _ref(obj: Obj) -> dict[str, str]:
    # `ref` marshals name and uid with omitempty
    meta = obj.get("metadata", {})
    out: dict[str, str] = {}
    if meta.get("name"):
        out["name"] = meta["name"]
    if meta.get("uid"):
        out["uid"] = meta["uid"]
    return out


def bound_claims(
    *,
    issuer: str,
    audiences: list[str],
    service_account: Obj,
    now: int,
    expiration_seconds: int,
    secret: Obj | None = None,
    pod: Obj | None = None,
    node: Obj | None = None,
    warn_after_seconds: int = 0,
) -> dict[str, Any]:
    """token.Claims: the public claims plus the private `kubernetes.io` object; at most one of secret / pod /
    node, a pod-bound token also naming the pod's node. `jti` is a fresh UUID (ServiceAccountTokenJTI, GA 1.32)."""
    if secret is not None and (pod is not None or node is not None):
        raise ValueError("internal error, token can only be bound to one object type")
    meta = service_account["metadata"]
    private: dict[str, Any] = {
        "namespace": meta["namespace"],
        "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
    }
    if pod is not None:
        private["pod"] = _ref(pod)
        if node is not None:
            private["node"] = _ref(node)
    elif secret is not None:
        private["secret"] = _ref(secret)
    elif node is not None:
        private["node"] = _ref(node)
    if warn_after_seconds:
        private["warnafter"] = now + warn_after_seconds
    return {
        "aud": list(audiences),
        "exp": now + expiration_seconds,
        "iat": now,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": now,
        "sub": make_username(meta["namespace"], meta["name"]),
    }


def legacy_claims(service_account: Obj, secret_name: str) -> dict[str, Any]:
    """LegacyClaims: no exp, iat, nbf, aud or jti — the token lives as long as its Secret."""
    meta = service_account["metadata"]
    return {
        "iss": LEGACY_ISSUER,
        LEGACY_NAMESPACE_CLAIM: meta["namespace"],
        LEGACY_SECRET_NAME_CLAIM: secret_name,
        LEGACY_SA_NAME_CLAIM: meta["name"],
        LEGACY_SA_UID_CLAIM: meta["uid"],
        "sub": make_username(meta["namespace"], meta["name"]),
    }
