"""The `verb` and `resource` labels of one API server request, from its method and path.

The same reading of a URL the API server's own request-info resolver does (apiserver/pkg/endpoints/request/
requestinfo.go): `/api/v1/...` and `/apis/{group}/{version}/...` are resource requests, `namespaces/{ns}/`
before the resource makes it namespaced, a third segment after the resource is a subresource; a GET with a
name is `get`, without one `list` (`watch` with `?watch=true`), a DELETE without a name `deletecollection`.
Anything the broker does not call is "other": object names, namespaces and unknown resources never become
label values.

Non-resource paths: `/.well-known/openid-configuration` is "discovery", and so are `/version`, the API
discovery documents (`/api`, `/apis/{group}/{version}`, …) and the health endpoints (readiness pings `/version`) — what Kubernetes' `system:discovery` ClusterRole
groups as discovery. A path ending in `/jwks` (`/openid/v1/jwks`, or a same-origin jwks_uri) is "jwks".

No regular expressions: this runs on every request (one `split` and a few dict lookups, about a microsecond).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from broker.metric_labels import OTHER, KubeResource, KubeVerb, Other

_RESOURCES: Final[dict[str, KubeResource]] = {
    "serviceaccounts": "serviceaccounts",
    "serviceaccounts/token": "serviceaccounts/token",
    "secrets": "secrets",
    "namespaces": "namespaces",
    "leases": "leases",
    "tokenreviews": "tokenreviews",
    "selfsubjectreviews": "selfsubjectreviews",
}
_DISCOVERY_PATHS: Final = frozenset(
    {"/.well-known/openid-configuration", "/version", "/api", "/apis", "/healthz", "/livez", "/readyz"}
)
# verbs that do not depend on whether the path names an object
_WRITE_VERBS: Final[dict[str, KubeVerb]] = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_labels(
    method: str, path: str, params: Mapping[str, str] | None = None
) -> tuple[KubeVerb | Other, KubeResource | Other]:
    """(verb, resource) for a request `method path` relative to the server URL, e.g.
    ("POST", "/api/v1/namespaces/ci/serviceaccounts/sa1/token") → ("create", "serviceaccounts/token")."""
    method = method.upper()
    path = path.partition("?")[0]
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        rest = parts[2:]  # api, {version}
    elif parts[0] == "apis":
        rest = parts[3:]  # apis, {group}, {version}
    else:
        rest = []
    if not rest or not rest[0]:
        return _non_resource(method, path, parts)
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # namespaces, {namespace}: the resource follows
    resource: KubeResource | Other = _RESOURCES.get(
        rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}", "other"
    )
    named = len(rest) > 1
    verb: KubeVerb | Other
    if method == "GET" or method == "HEAD":
        if named:
            verb = "get"
        elif params is not None and params.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, OTHER)
    return verb, resource


def _non_resource(method: str, path: str, parts: list[str]) -> tuple[KubeVerb | Other, KubeResource | Other]:
    verb: KubeVerb | Other = "get" if method in ("GET", "HEAD") else OTHER
    # /api/v1, /apis/{group}/{version}: API discovery documents
    if path in _DISCOVERY_PATHS or parts[0] in ("api", "apis"):
        return verb, "discovery"
    if parts[-1] == "jwks":
        return verb, "jwks"
    return verb, OTHER
