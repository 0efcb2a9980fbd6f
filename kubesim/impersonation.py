"""User impersonation (`kubectl --as/--as-group/--as-uid`): apiserver/pkg/endpoints/filters/impersonation.go.

The requesting user needs the `impersonate` verb on users, groups, serviceaccounts, uids and userextras;
the request then runs as the impersonated user.
"""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDictProxy

from . import status
from .authn import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED
from .context import SimContext, UserInfo
from .rbac import Attributes, decide

USER = "Impersonate-User"
GROUP = "Impersonate-Group"
UID = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
SA_PREFIX = "system:serviceaccount:"


def _check(
    ctx: SimContext,
    user: UserInfo,
    resource: str,
    name: str,
    namespace: str = "",
    group: str = "",
    sub: str = "",
) -> None:
    attrs = Attributes(
        user=user,
        verb="impersonate",
        is_resource_request=True,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=sub,
        name=name,
    )
    if not decide(ctx, attrs).allowed:
        raise status.forbidden(
            user.username,
            "impersonate",
            f"{resource}/{sub}" if sub else resource,
            group,
            namespace or None,
            name,
        )


def impersonate(
    ctx: SimContext, user: UserInfo, headers: CIMultiDictProxy[str] | Mapping[str, str]
) -> UserInfo:
    name = headers.get(USER, "")
    groups = headers.getall(GROUP, []) if isinstance(headers, CIMultiDictProxy) else []
    uid = headers.get(UID, "")
    extra: dict[str, list[str]] = {}
    for key in headers:
        if key.lower().startswith(EXTRA_PREFIX.lower()):
            extra.setdefault(key[len(EXTRA_PREFIX) :].lower(), []).append(headers[key])
    if not name:
        if groups or uid or extra:
            raise status.bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user"
            )
        return user
    new_groups = list(groups)
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        namespace, sa_name = name[len(SA_PREFIX) :].split(":")
        _check(ctx, user, "serviceaccounts", sa_name, namespace=namespace)
        # a service account is always in its groups
        new_groups += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        _check(ctx, user, "users", name)
    for group in groups:
        _check(ctx, user, "groups", group)
    if uid:
        _check(ctx, user, "uids", uid, group="authentication.k8s.io")
    for key, values in extra.items():
        for value in values:
            _check(ctx, user, "userextras", value, group="authentication.k8s.io", sub=key)
    if name == ANONYMOUS:
        new_groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in new_groups:
        new_groups.append(AUTHENTICATED)
    return UserInfo(username=name, uid=uid, groups=list(dict.fromkeys(new_groups)), extra=extra)
