"""Bearer-token authentication of service-account JWTs, bound and legacy.

Follows pkg/serviceaccount/jwt.go (issuer pre-check, signature by the key the `kid` names, audience
intersection), claims.go (bound-token validator: 60 s leeway, service account and bound object looked up by
name and uid) and legacy.go (legacy validator: the Secret must still hold exactly this token; last-used and
invalid-since labels). Errors carry the texts kube-apiserver puts into a TokenReview's `status.error`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import sa_claims
from .auth_cache import cache_key
from .context import SimContext, UserInfo
from .kinds import NODES, PODS, SECRETS, SERVICEACCOUNTS
from .state import Obj, ResourceType
from .status import ApiError
from .tokens import InvalidToken, decode_unverified

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 60  # jwt.DefaultLeeway
LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"
INVALID_BEARER_TOKEN = "invalid bearer token"
# SplitUsername validates both parts as DNS-1123 names
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Rejected(Exception):
    """A token this authenticator recognised but refuses; the message is the upstream error text."""


@dataclass
class TokenAuthResult:
    """What a TokenReview reports: the user and audiences, or the error (`status.error`)."""

    user: UserInfo | None
    audiences: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def authenticated(self) -> bool:
        return self.user is not None


def authenticate_token(ctx: SimContext, token: str) -> UserInfo | None:
    """The user a bearer token names, or None (the server then answers 401 Unauthorized)."""
    result = review_token(ctx, token)
    if result.user is None:
        # never log the token; the reason is what kube-apiserver logs ("Unable to authenticate the request")
        log.info("Unable to authenticate the request: %s", result.error)
    return result.user


def review_token(ctx: SimContext, token: str, audiences: list[str] | None = None) -> TokenAuthResult:
    """Authenticate `token` for `audiences` (default: the API audiences), honouring the success cache."""
    requested = list(audiences) if audiences else ctx.api_audiences
    ttl = ctx.options.auth_cache_seconds
    key = cache_key(token, requested) if ttl > 0 else None
    if key is not None:
        cached = ctx.auth_cache.get(key)
        if isinstance(cached, TokenAuthResult):
            return copy.deepcopy(cached)
    result = _review(ctx, token, requested)
    if key is not None and result.user is not None:
        ctx.auth_cache.put(key, copy.deepcopy(result), ttl)
    return result


def _review(ctx: SimContext, token: str, requested: list[str]) -> TokenAuthResult:
    # hasCorrectIssuer: a token that is not a JWS from one of our issuers is left to other authenticators,
    # and with none left the bearer-token authenticator reports its generic error
    try:
        _header, unverified = decode_unverified(token)
    except InvalidToken:
        return TokenAuthResult(None, error=INVALID_BEARER_TOKEN)
    issuer = unverified.get("iss")
    legacy = issuer == sa_claims.LEGACY_ISSUER
    if not legacy and (not ctx.issuer or issuer != ctx.issuer):
        return TokenAuthResult(None, error=INVALID_BEARER_TOKEN)
    try:
        claims = ctx.keys.verify(token).claims
        if claims.get("iss") != issuer:
            raise Rejected(f'token issuer "{claims.get("iss")}" is invalid')
        token_audiences = _audiences(claims)
        if not token_audiences:
            # only API audiences are allowed for legacy tokens (jwt.go)
            token_audiences = ctx.api_audiences
        granted = [a for a in token_audiences if a in requested]
        if not granted:
            raise Rejected(
                f"token audiences {_go_list(token_audiences)} is invalid for the target audiences {_go_list(requested)}"
            )
        user = _validate_legacy(ctx, token, claims) if legacy else _validate_bound(ctx, claims)
    except (InvalidToken, Rejected) as exc:
        return TokenAuthResult(None, error=f"[{INVALID_BEARER_TOKEN}, {exc}]")
    return TokenAuthResult(user, audiences=granted)


def _go_list(values: list[str]) -> str:
    # Go's %q of a []string: ["a" "b"]
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def _audiences(claims: dict[str, Any]) -> list[str]:
    # jwt.Audience unmarshals a single string or an array of strings
    aud = claims.get("aud")
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise Rejected("go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience")


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("go-jose/go-jose/jwt: expected number value to unmarshal")
    return float(value)


def _deleted_too_long_ago(obj: Obj, now: datetime) -> bool:
    # consider things deleted prior to now()-leeway to be invalid
    stamp = obj.get("metadata", {}).get("deletionTimestamp")
    if not stamp:
        return False
    try:
        deleted = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True
    return deleted < now - timedelta(seconds=LEEWAY_SECONDS)


def _uid(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


def _ref(private: dict[str, Any], key: str) -> dict[str, str] | None:
    ref = private.get(key)
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise Rejected("service account token claims could not be validated due to unexpected private claim")
    return {"name": str(ref.get("name", "")), "uid": str(ref.get("uid", ""))}


def _lookup(ctx: SimContext, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
    return ctx.store.try_get(rtype, namespace, name) if name else None


def _validate_bound(ctx: SimContext, claims: dict[str, Any]) -> UserInfo:
    """claims.go validator.Validate."""
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise Rejected("service account token claims could not be validated due to unexpected private claim")
    now_dt = datetime.now(UTC)
    now = now_dt.timestamp()
    nbf, exp, iat = _numeric(claims, "nbf"), _numeric(claims, "exp"), _numeric(claims, "iat")
    # go-jose ValidateWithLeeway checks nbf, then exp, then iat
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise Rejected("service account token is not valid yet")
    if exp is not None and now - LEEWAY_SECONDS > exp:
        raise Rejected("service account token has expired")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise Rejected(
            "service account token claims could not be validated due to unexpected validation error"
        )

    namespace = str(private.get("namespace", ""))
    sa_ref = _ref(private, "serviceaccount") or {"name": "", "uid": ""}
    service_account = _lookup(ctx, SERVICEACCOUNTS, namespace, sa_ref["name"])
    if service_account is None:
        raise Rejected(f'serviceaccounts "{sa_ref["name"]}" not found')
    if _uid(service_account) != sa_ref["uid"]:
        raise Rejected(
            f"service account UID ({_uid(service_account)}) does not match claim ({sa_ref['uid']})"
        )
    if _deleted_too_long_ago(service_account, now_dt):
        raise Rejected(f"service account {namespace}/{sa_ref['name']} has been deleted")

    extra: dict[str, list[str]] = {}
    secret_ref, pod_ref, node_ref = _ref(private, "secret"), _ref(private, "pod"), _ref(private, "node")
    if secret_ref is not None:
        secret = _lookup(ctx, SECRETS, namespace, secret_ref["name"])
        if secret is None:
            raise Rejected("service account token has been invalidated")
        if _uid(secret) != secret_ref["uid"]:
            raise Rejected(
                f"secret UID ({_uid(secret)}) does not match service account secret ref claim ({secret_ref['uid']})"
            )
        if _deleted_too_long_ago(secret, now_dt):
            raise Rejected("service account token has been invalidated")
    if pod_ref is not None:
        pod = _lookup(ctx, PODS, namespace, pod_ref["name"])
        if pod is None:
            raise Rejected("service account token has been invalidated")
        if _uid(pod) != pod_ref["uid"]:
            raise Rejected(
                f"pod UID ({_uid(pod)}) does not match service account pod ref claim ({pod_ref['uid']})"
            )
        if _deleted_too_long_ago(pod, now_dt):
            raise Rejected("service account token has been invalidated")
        if pod_ref["name"] and pod_ref["uid"]:
            extra[sa_claims.POD_NAME_KEY] = [pod_ref["name"]]
            extra[sa_claims.POD_UID_KEY] = [pod_ref["uid"]]
    if node_ref is not None and pod_ref is None:
        # a Node-bound token (ServiceAccountTokenNodeBindingValidation); a pod-bound token's node is informative
        node = _lookup(ctx, NODES, None, node_ref["name"])
        if node is None:
            raise Rejected("service account token has been invalidated")
        if _uid(node) != node_ref["uid"]:
            raise Rejected(
                f"node UID ({_uid(node)}) does not match service account node ref claim ({node_ref['uid']})"
            )
        if _deleted_too_long_ago(node, now_dt):
            raise Rejected("service account token has been invalidated")
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[sa_claims.CREDENTIAL_ID_KEY] = [sa_claims.credential_id_for_jti(jti)]
    if node_ref is not None and node_ref["name"]:
        extra[sa_claims.NODE_NAME_KEY] = [node_ref["name"]]
        if node_ref["uid"]:
            extra[sa_claims.NODE_UID_KEY] = [node_ref["uid"]]
    return UserInfo(
        username=sa_claims.make_username(namespace, sa_ref["name"]),
        uid=sa_ref["uid"],
        groups=sa_claims.group_names(namespace),
        extra=dict(sorted(extra.items())),
    )


def _secret_token(secret: Obj) -> bytes:
    raw = (secret.get("data") or {}).get("token") or ""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _split_username(subject: str) -> tuple[str, str] | None:
    if not subject.startswith(sa_claims.USERNAME_PREFIX):
        return None
    parts = subject[len(sa_claims.USERNAME_PREFIX) :].split(":")
    if len(parts) != 2 or not all(_DNS1123_SUBDOMAIN.match(p) for p in parts):
        return None
    return parts[0], parts[1]


def _validate_legacy(ctx: SimContext, token: str, claims: dict[str, Any]) -> UserInfo:
    """legacy.go legacyValidator.Validate (with lookup, as kube-apiserver runs it)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Rejected("sub claim is missing")
    namespace = str(claims.get(sa_claims.LEGACY_NAMESPACE_CLAIM) or "")
    if not namespace:
        raise Rejected("namespace claim is missing")
    secret_name = str(claims.get(sa_claims.LEGACY_SECRET_NAME_CLAIM) or "")
    if not secret_name:
        raise Rejected("secretName claim is missing")
    sa_name = str(claims.get(sa_claims.LEGACY_SA_NAME_CLAIM) or "")
    if not sa_name:
        raise Rejected("serviceAccountName claim is missing")
    sa_uid = str(claims.get(sa_claims.LEGACY_SA_UID_CLAIM) or "")
    if not sa_uid:
        raise Rejected("serviceAccountUID claim is missing")
    if _split_username(subject) != (namespace, sa_name):
        raise Rejected("sub claim is invalid")

    secret = ctx.store.try_get(SECRETS, namespace, secret_name)
    if secret is None or secret.get("metadata", {}).get("deletionTimestamp"):
        raise Rejected("Token has been invalidated")
    if not hmac.compare_digest(_secret_token(secret), token.encode("utf-8")):
        raise Rejected("Token does not match server's copy")
    service_account = ctx.store.try_get(SERVICEACCOUNTS, namespace, sa_name)
    if service_account is None:
        raise Rejected(f'serviceaccounts "{sa_name}" not found')
    if service_account.get("metadata", {}).get("deletionTimestamp"):
        raise Rejected(f"ServiceAccount {namespace}/{sa_name} has been deleted")
    if _uid(service_account) != sa_uid:
        raise Rejected(f"ServiceAccount UID ({_uid(service_account)}) does not match claim ({sa_uid})")
    if secret.get("metadata", {}).get("labels", {}).get(INVALID_SINCE_LABEL):
        _mark_last_used(ctx, secret)
        raise Rejected(
            f"the token in secret {namespace}/{secret_name} for service account {namespace}/{sa_name} has been "
            "marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or "
            f"remove the '{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token"
        )
    _mark_last_used(ctx, secret)
    return UserInfo(
        username=sa_claims.make_username(namespace, sa_name),
        uid=sa_uid,
        groups=sa_claims.group_names(namespace),
    )


def _mark_last_used(ctx: SimContext, secret: Obj) -> None:
    """patchSecretWithLastUsedDate: write today's date unless the label already says today (or tomorrow),
    so a busy token costs one write a day, not one per request."""
    now = datetime.now(UTC)
    today = now.strftime("%Y-%m-%d")
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d")
    meta = secret.get("metadata", {})
    if (meta.get("labels") or {}).get(LAST_USED_LABEL) in (today, tomorrow):
        return
    live = ctx.store.try_get(SECRETS, meta.get("namespace"), meta.get("name", ""))
    if live is None or _uid(live) != _uid(secret):
        return
    live["metadata"].setdefault("labels", {})
    if live["metadata"]["labels"] is None:
        live["metadata"]["labels"] = {}
    live["metadata"]["labels"][LAST_USED_LABEL] = today
    try:
        ctx.store.update(SECRETS, meta.get("namespace"), live)
    except ApiError as exc:  # a lost race costs only the label, as upstream logs and carries on
        log.warning(
            "Failed to label legacy service account token %s/%s with last-used date: %s",
            meta.get("namespace"),
            meta.get("name"),
            exc,
        )
