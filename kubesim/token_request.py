"""The TokenRequest API: POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token.

Mirrors pkg/registry/core/serviceaccount/storage/token.go (Kubernetes 1.32): body name/namespace must match
the URL, the service account must exist (404), audiences default to the API audiences, the expiration is
validated (422, never clamped), the bound object is looked up (400 / 404 / 409), a configured maximum caps
the expiration with a Warning, and the response (201) echoes the request with status.token and
status.expirationTimestamp taken before signing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import sa_claims, status
from .context import SimContext
from .kinds import NODES, PODS, SECRETS, SERVICEACCOUNTS
from .state import Obj
from .wire import decode_object, json_response, rfc3339, type_error

KIND = "TokenRequest"
GROUP = "authentication.k8s.io"
API_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION_SECONDS = 3600  # SetDefaults_TokenRequestSpec
MIN_EXPIRATION_SECONDS = 10 * 60  # MinTokenAgeSec
MAX_EXPIRATION_SECONDS = 1 << 32
PATH = "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"


@dataclass
class IssuedToken:
    """The TokenRequest answered (status filled) and the warnings the response carries."""

    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)


def routes(ctx: SimContext) -> list[web.RouteDef]:
    async def create_token(request: web.Request) -> web.Response:
        body = decode_object(await request.read(), KIND)
        issued = issue_token(ctx, request.match_info["namespace"], request.match_info["name"], body)
        headers = {}
        if issued.warnings:
            # warning.AddWarning → `Warning: 299 - "<text>"`
            headers["Warning"] = ", ".join(f'299 - "{w}"' for w in issued.warnings)
        return json_response(issued.body, status=201, headers=headers)

    return [web.post(PATH, create_token)]


def invalid(name: str, causes: list[status.Cause]) -> status.ApiError:
    """errors.NewInvalid(GroupKind{authentication.k8s.io, TokenRequest}, name, errs)."""
    err = status.invalid(KIND, name, causes, group=GROUP)
    joined = ", ".join(f"{c.field}: {c.message}" for c in causes)
    if len(causes) > 1:
        joined = f"[{joined}]"
    err.message = f'{KIND}.{GROUP} "{name}" is invalid: {joined}'
    if err.details is not None and not name:
        err.details.pop("name", None)  # StatusDetails.name is omitempty
    return err


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class _Spec:
    audiences: list[str]
    expiration_seconds: int
    bound_ref: dict[str, str] | None


def _parse_spec(body: dict[str, Any]) -> _Spec:
    spec = body.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise type_error(KIND, "TokenRequest.spec", spec, "v1.TokenRequestSpec")
    audiences = spec.get("audiences")
    if audiences is None:
        audiences = []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise type_error(KIND, "TokenRequestSpec.spec.audiences", audiences, "string")
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION_SECONDS
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise type_error(KIND, "TokenRequestSpec.spec.expirationSeconds", expiration, "int64")
    ref = spec.get("boundObjectRef")
    bound: dict[str, str] | None = None
    if ref is not None:
        if not isinstance(ref, dict):
            raise type_error(KIND, "TokenRequestSpec.spec.boundObjectRef", ref, "v1.BoundObjectReference")
        bound = {}
        for key in ("kind", "apiVersion", "name", "uid"):
            value = ref.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise type_error(KIND, f"BoundObjectReference.spec.boundObjectRef.{key}", value, "string")
            if value:
                bound[key] = value  # every field is omitempty
    return _Spec(list(audiences), expiration, bound)


def _group_version(api_version: str) -> tuple[str, str]:
    # schema.ParseGroupVersion: "v1" → ("", "v1"), "apps/v1" → ("apps", "v1")
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def _get_bound(
    ctx: SimContext, namespace: str, sa_name: str, ref: dict[str, str]
) -> tuple[str, Obj, Obj | None]:
    """(kind, the bound object, a pod's node) or the error the registry gives."""
    kind = ref.get("kind", "")
    group, version = _group_version(ref.get("apiVersion", ""))
    name = ref.get("name", "")
    if group != "" or kind not in ("Pod", "Secret", "Node"):
        raise status.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    if not name:
        raise status.bad_request("Name parameter required.")  # NamespaceKeyFunc
    if kind == "Secret":
        return kind, ctx.store.get(SECRETS, namespace, name), None
    if kind == "Node":
        return kind, ctx.store.get(NODES, None, name), None
    pod = ctx.store.get(PODS, namespace, name)
    if (pod.get("spec") or {}).get("serviceAccountName", "") != sa_name:
        raise status.bad_request(
            f"cannot bind token for serviceaccount {_go_quote(sa_name)} to pod running with different serviceaccount name."
        )
    node: Obj | None = None
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    if node_name:
        # ServiceAccountTokenPodNodeInfo: embed the node; a missing Node still contributes its name
        node = ctx.store.try_get(NODES, None, node_name) or {"metadata": {"name": node_name}}
    return kind, pod, node


def _echo_metadata(
    meta: dict[str, Any], name: str, namespace: str, created: float, uid: str
) -> dict[str, Any]:
    # ObjectMeta field order as Go marshals it; the uid is the service account's, as kube-apiserver answers
    merged = {**meta, "name": name, "namespace": namespace, "uid": uid, "creationTimestamp": rfc3339(created)}
    order = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp")
    out = {k: merged[k] for k in order if merged.get(k)}
    for key in ("labels", "annotations"):
        if merged.get(key):
            out[key] = merged[key]
    return out


def issue_token(ctx: SimContext, namespace: str, name: str, body: dict[str, Any]) -> IssuedToken:
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise type_error(KIND, "TokenRequest.metadata", meta, "v1.ObjectMeta")
    spec = _parse_spec(body)
    body_name, body_namespace = meta.get("name") or "", meta.get("namespace") or ""
    if body_name and body_name != name:
        raise invalid(
            name,
            [
                status.Cause(
                    "metadata.name",
                    f"Invalid value: {_go_quote(str(body_name))}: must match the service account name if specified",
                )
            ],
        )
    if body_namespace and body_namespace != namespace:
        raise invalid(
            name,
            [
                status.Cause(
                    "metadata.namespace",
                    f"Invalid value: {_go_quote(str(body_namespace))}: must match the service account namespace if specified",
                )
            ],
        )

    service_account = ctx.store.get(SERVICEACCOUNTS, namespace, name)
    audiences = spec.audiences or ctx.api_audiences
    # the time is taken before signing so that status.expirationTimestamp <= the token's exp
    now = time.time()

    causes: list[status.Cause] = []
    if spec.expiration_seconds < MIN_EXPIRATION_SECONDS:
        causes.append(
            status.Cause(
                "spec.expirationSeconds",
                f"Invalid value: {spec.expiration_seconds}: may not specify a duration less than 10 minutes",
            )
        )
    if spec.expiration_seconds > MAX_EXPIRATION_SECONDS:
        causes.append(
            status.Cause(
                "spec.expirationSeconds",
                f"Invalid value: {spec.expiration_seconds}: may not specify a duration larger than 2^32 seconds",
            )
        )
    if causes:
        raise invalid("", causes)

    bound_kind = ""
    bound: Obj | None = None
    node: Obj | None = None
    if spec.bound_ref is not None:
        bound_kind, bound, node = _get_bound(ctx, namespace, name, spec.bound_ref)
        ref_uid = spec.bound_ref.get("uid", "")
        actual_uid = bound["metadata"].get("uid", "")
        if ref_uid and ref_uid != actual_uid:
            raise status.conflict(
                bound_kind,
                spec.bound_ref.get("name", ""),
                why=f"the UID in the bound object reference ({ref_uid}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
            )

    warnings: list[str] = []
    expiration = spec.expiration_seconds
    cap = ctx.options.max_token_expiration
    if cap > 0 and expiration > cap:
        warnings.append(f"requested expiration of {expiration} seconds shortened to {cap} seconds")
        expiration = cap

    # projected-volume tokens (3607 s, pod-bound, API audiences only) are extended to a year with `warnafter`
    token_lifetime, warn_after = expiration, 0
    if (
        ctx.options.extend_token_expiration
        and bound_kind == "Pod"
        and expiration == sa_claims.WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        and set(audiences) <= set(ctx.api_audiences)
    ):
        token_lifetime, warn_after = sa_claims.EXPIRATION_EXTENSION_SECONDS, expiration

    claims = sa_claims.bound_claims(
        issuer=ctx.issuer,
        audiences=audiences,
        service_account=service_account,
        now=int(now),
        expiration_seconds=token_lifetime,
        secret=bound if bound_kind == "Secret" else None,
        pod=bound if bound_kind == "Pod" else None,
        node=bound if bound_kind == "Node" else node,
        warn_after_seconds=warn_after,
    )
    token = ctx.keys.sign(claims)
    answer = {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": _echo_metadata(meta, name, namespace, now, service_account["metadata"]["uid"]),
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": spec.bound_ref},
        "status": {"token": token, "expirationTimestamp": rfc3339(now + expiration)},
    }
    return IssuedToken(answer, warnings, claims)
