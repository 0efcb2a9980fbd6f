"""RequestInfo: what a request is about, parsed from its path the way
k8s.io/apiserver/pkg/endpoints/request/requestinfo.go does (authorization and dispatch both read it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_API_PREFIXES = {"api", "apis"}
_GROUPLESS_PREFIXES = {"api"}
# /api/v1/namespaces/{ns}/status and /finalize are subresources of the namespace, not a resource named "status"
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_VERB_BY_METHOD = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    # path segments beyond resource/name/subresource (none of our handlers accept them)
    extra_parts: tuple[str, ...] = ()

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    non_resource = RequestInfo(False, path, method.lower())
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix = parts[0]
    rest = parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    verb = _VERB_BY_METHOD.get(method.upper(), method.lower())
    # /api/v1/watch/... is the deprecated watch form
    if rest and rest[0] == "watch":
        rest = rest[1:]
        verb = "watch"

    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    extra = tuple(rest[3:])

    if not name:
        if verb == "get":
            verb = "watch" if _truthy(query.get("watch")) else "list"
            # a list narrowed to one name by fieldSelector is authorized as that name (resourceNames rules)
            name = _exact_name(query.get("fieldSelector", ""))
        elif verb == "delete":
            verb = "deletecollection"
    return RequestInfo(
        True, path, verb, prefix, group, version, namespace, resource, subresource, name, extra
    )


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def _exact_name(field_selector: str) -> str:
    for term in field_selector.split(","):
        key, sep, value = term.partition("=")
        key = key.rstrip("=")
        value = value.lstrip("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!") and value and "/" not in value:
            return value.strip()
    return ""
