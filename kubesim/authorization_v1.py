"""authorization.k8s.io/v1: SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
SelfSubjectRulesReview (`kubectl auth can-i --list`), answered by the same authorizer that guards requests."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .context import SimContext, UserInfo
from .rbac import Attributes, aggregate_error, decide, rules_for
from .resources import decode_json_or_yaml, json_response
from .status import bad_request
from .validation import invalid_cause, raise_if, required_cause

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"


async def _read(request: web.Request, kind: str) -> dict[str, Any]:
    body = decode_json_or_yaml(await request.read(), request.content_type)
    if not isinstance(body, dict):
        raise bad_request(f"the object provided is unrecognized (must be of type {kind})")
    if body.get("kind") not in (None, kind):
        raise bad_request(f'{body.get("kind")} in version "v1" cannot be handled as a {kind}')
    spec = body.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    body["spec"] = spec
    return body


def _attributes(kind: str, user: UserInfo, spec: dict[str, Any]) -> Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise_if(
            [
                invalid_cause(
                    "spec.resourceAttributes",
                    "null" if not resource else "set",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
            kind,
            "",
            GROUP,
        )
    if isinstance(resource, dict):
        return Attributes(
            user=user,
            verb=str(resource.get("verb") or ""),
            is_resource_request=True,
            namespace=str(resource.get("namespace") or ""),
            api_group=str(resource.get("group") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            name=str(resource.get("name") or ""),
        )
    attrs = non_resource if isinstance(non_resource, dict) else {}
    return Attributes(
        user=user,
        verb=str(attrs.get("verb") or ""),
        is_resource_request=False,
        path=str(attrs.get("path") or ""),
    )


def _answer(body: dict[str, Any], kind: str, result: dict[str, Any]) -> web.Response:
    body["kind"], body["apiVersion"] = kind, API_VERSION
    meta = body.get("metadata")
    body["metadata"] = {**(meta if isinstance(meta, dict) else {}), "creationTimestamp": None}
    body["status"] = result
    return json_response(body, 201)


def routes(ctx: SimContext) -> list[web.RouteDef]:
    async def self_subject_access_review(request: web.Request) -> web.Response:
        kind = "SelfSubjectAccessReview"
        body = await _read(request, kind)
        decision = decide(ctx, _attributes(kind, request["user"], body["spec"]))
        result: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            result["reason"] = decision.reason
        return _answer(body, kind, result)

    async def subject_access_review(request: web.Request) -> web.Response:
        kind = "SubjectAccessReview"
        body = await _read(request, kind)
        spec = body["spec"]
        if not spec.get("user") and not spec.get("groups"):
            raise_if(
                [required_cause("spec.user", "at least one of user or group must be specified")],
                kind,
                "",
                GROUP,
            )
        groups = spec.get("groups") if isinstance(spec.get("groups"), list) else []
        subject = UserInfo(
            username=str(spec.get("user") or ""), uid=str(spec.get("uid") or ""), groups=list(groups)
        )
        decision = decide(ctx, _attributes(kind, subject, spec))
        result: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            result["reason"] = decision.reason
        return _answer(body, kind, result)

    async def self_subject_rules_review(request: web.Request) -> web.Response:
        kind = "SelfSubjectRulesReview"
        body = await _read(request, kind)
        namespace = str(body["spec"].get("namespace") or "")
        if not namespace:
            raise bad_request("no namespace on request")
        # the registry answers a new object: nothing of the request is echoed
        answer = {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "spec": {}}
        answer["status"] = rules_review_status(ctx, request["user"], namespace)
        return json_response(answer, 201)

    prefix = f"/apis/{API_VERSION}"
    return [
        web.post(f"{prefix}/selfsubjectaccessreviews", self_subject_access_review),
        web.post(f"{prefix}/subjectaccessreviews", subject_access_review),
        web.post(f"{prefix}/selfsubjectrulesreviews", self_subject_rules_review),
    ]


_ALLOW_ALL = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}


def rules_review_status(ctx: SimContext, user: UserInfo, namespace: str) -> dict[str, Any]:
    """SubjectRulesReviewStatus from the authorizer's RulesFor (RBACAuthorizer.RulesFor: a rule with resources
    is a resource rule, one with non-resource URLs a non-resource rule; an unresolvable role reference is the
    evaluationError, worded as the RBAC listers word it)."""
    if ctx.options.authorization == "always-allow":
        return dict(_ALLOW_ALL)
    resolution = rules_for(ctx.store, user, namespace)
    resource_rules = []
    non_resource_rules = []
    for rule in resolution.rules:
        if rule.get("resources"):
            shown = {"verbs": rule.get("verbs") or []}
            shown.update({k: rule[k] for k in ("apiGroups", "resources", "resourceNames") if rule.get(k)})
            resource_rules.append(shown)
        if rule.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            )
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
    if resolution.missing:
        status["evaluationError"] = aggregate_error(
            [
                f'{kind.lower()}.rbac.authorization.k8s.io "{name}" not found'
                for kind, name in resolution.missing
            ]
        )
    return status
