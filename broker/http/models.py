"""Request and response bodies of the v1 HTTP API: validated here, nowhere else (pydantic only at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from broker._kits.durations import parse_duration
from broker._kits.rfc3339 import format_time, parse_time

# A namespace name is an RFC 1123 DNS label (k8s.io/apimachinery ValidateNamespaceName).
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Context travels into the audit trail and logs: bounded, and free of control characters (no forged lines).
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
MAX_CONTEXT_ENTRIES = 16
MAX_AUDIENCES = 16

RoleName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=_NO_CONTROL)]
NamespaceName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=NAMESPACE_PATTERN)]
Audience = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_NO_CONTROL)]
ContextKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NO_CONTROL)]
ContextValue = Annotated[str, StringConstraints(max_length=256, pattern=_NO_CONTROL)]


class TokenRequestBody(BaseModel):
    """POST /v1/tokens."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: RoleName
    namespace: NamespaceName | None = None
    ttl: int | str | None = Field(
        default=None,
        description='Lifetime in seconds (900) or a Go duration ("15m", "1h30m"); default: the role\'s.',
    )
    audiences: Annotated[list[Audience], Field(min_length=1, max_length=MAX_AUDIENCES)] | None = None
    context: Annotated[dict[ContextKey, ContextValue], Field(max_length=MAX_CONTEXT_ENTRIES)] | None = Field(
        default=None, description="Labels recorded with the issuance (e.g. the CI job), at most 16."
    )

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl_is_a_duration(cls, value: Any) -> Any:
        # one clear message instead of pydantic's one-per-union-member
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError('must be whole seconds (900) or a duration string such as "15m"')
        parse_duration(value)
        return value

    @property
    def ttl_seconds(self) -> int | None:
        return None if self.ttl is None else parse_duration(self.ttl)


def _timestamp(value: datetime | None) -> str | None:
    # second precision, as Kubernetes writes metav1.Time (what kubectl's credential cache reads)
    return format_time(value)


class ServiceAccountRef(BaseModel):
    namespace: str
    name: str


class TokenResponse(BaseModel):
    """201 of POST /v1/tokens (JSON format)."""

    token: str
    token_id: str
    jti: str
    expires_at: datetime | None = Field(description="null for a legacy Secret token, which does not expire")
    issued_at: datetime
    service_account: ServiceAccountRef
    audiences: list[str]
    role: str
    cluster: str
    warnings: list[str] = Field(default_factory=list)

    @field_serializer("expires_at", "issued_at")
    def _rfc3339(self, value: datetime | None) -> str | None:
        return _timestamp(value)


class ExecCredentialStatus(BaseModel):
    token: str
    # absent for a legacy token that does not expire
    expirationTimestamp: datetime | None = None

    @field_serializer("expirationTimestamp")
    def _rfc3339(self, value: datetime | None) -> str | None:
        return _timestamp(value)


class ExecCredential(BaseModel):
    """201 of POST /v1/tokens?format=exec-credential (what a kubectl exec plugin prints)."""

    apiVersion: Literal["client.authentication.k8s.io/v1"] = "client.authentication.k8s.io/v1"
    kind: Literal["ExecCredential"] = "ExecCredential"
    status: ExecCredentialStatus


class RoleView(BaseModel):
    name: str
    description: str
    cluster: str
    namespaces: list[str]
    default_ttl: int = Field(description="seconds")
    max_ttl: int = Field(description="seconds")
    mode: str
    revocable: bool
    cluster_server: str = Field("", description="API server URL of the role's cluster")
    cluster_ca_data: str | None = Field(None, description="base64 PEM CA bundle of that API server")


class RoleList(BaseModel):
    roles: list[RoleView]


class WhoAmI(BaseModel):
    user: str
    groups: list[str]
    method: str
    roles: list[str] = Field(description="names of the roles this caller may request")
    claims: dict[str, Any] | None = Field(
        default=None,
        description="verified token claims grants can bind (OIDC callers), a TokenReview's `extra` "
        "(Kubernetes callers); absent for other callers",
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class FieldProblem(BaseModel):
    field: str
    problem: str


class Problem(BaseModel):
    """application/problem+json (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = Field(default=None, description="422: what is wrong with which field")
    failing: list[str] | None = Field(default=None, description="503 from /readyz: the failing dependencies")


# -- the audit trail (GET /v1/tokens, GET /v1/audit, DELETE /v1/tokens/{id}, POST /v1/introspect) ---------------
# Times are RFC 3339 UTC with microseconds, as in the JSON-lines audit stream.

MAX_REVOKE_REASON = 1024
# a JWT: three base64url parts; service-account tokens are ~1 KiB, a legacy one with many claims a little more
MAX_INTROSPECT_TOKEN = 16384


def _precise(value: datetime | None) -> str | None:
    return format_time(value, "microseconds")


class CallerView(BaseModel):
    user: str
    method: str = Field(description="how the caller authenticated: mtls, api-key, oidc, kubernetes")
    groups: list[str]


class SecretView(BaseModel):
    namespace: str
    name: str


class IssuanceView(BaseModel):
    """One token the broker issued (or set out to issue), in its current state. Never the token itself."""

    token_id: str
    state: str = Field(description="pending, issued, failed, aborted, revoked or expired")
    active: bool = Field(description="issued, not revoked, and neither past exp nor past revoke_at")
    requested_at: datetime = Field(description="when the issuance began")
    caller: CallerView
    role: str
    cluster: str
    namespace: str
    service_account: str
    audiences: list[str]
    ttl_requested: int | None = Field(description="seconds; null: the role's default")
    ttl_granted: int | None = Field(description="seconds")
    jti: str | None = Field(
        description='the JWT id; Kubernetes audit events show it as credential-id "JTI=…"'
    )
    token_sha256: str | None = Field(description="hex SHA-256 of the token, to match a token you hold")
    issued_at: datetime | None
    expires_at: datetime | None = Field(description="the JWT's exp; null for a legacy token (no exp)")
    revoke_at: datetime | None = Field(description="a short revocable token is revoked at this time")
    bound_secret: SecretView | None = Field(description="deleting this Secret revokes the token")
    context: dict[str, str]
    source_address: str
    user_agent: str
    status: int | None = Field(description="the HTTP status the caller got")
    reason: str
    request_id: str
    revoked_by: str | None
    revoked_at: datetime | None

    @field_serializer("requested_at", "issued_at", "expires_at", "revoke_at", "revoked_at")
    def _times(self, value: datetime | None) -> str | None:
        return _precise(value)


class AuditEventView(BaseModel):
    """One decision of the append-only log, with a full copy of who, what and where."""

    event_id: str
    event: str = Field(description="issued, denied, failed, aborted, revoked or expired")
    time: datetime
    token_id: str = Field(description="the issuance's id (a denial's own id: no token exists)")
    caller: CallerView
    role: str
    cluster: str
    namespace: str
    service_account: str
    audiences: list[str]
    ttl_requested: int | None
    ttl_granted: int | None
    jti: str | None
    token_sha256: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    revoke_at: datetime | None
    bound_secret: SecretView | None
    context: dict[str, str]
    source_address: str
    user_agent: str
    status: int | None
    reason: str = Field(description="denied: which rule; failed: the upstream error; revoked: the note")
    request_id: str
    revoked_by: str | None
    revoked_at: datetime | None

    @field_serializer("time", "issued_at", "expires_at", "revoke_at", "revoked_at")
    def _times(self, value: datetime | None) -> str | None:
        return _precise(value)


class IssuanceList(BaseModel):
    items: list[IssuanceView]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class AuditEventList(BaseModel):
    items: list[AuditEventView]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class RevokeRequest(BaseModel):
    """Optional body of DELETE /v1/tokens/{token_id}."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    reason: Annotated[str, StringConstraints(max_length=MAX_REVOKE_REASON, pattern=_NO_CONTROL)] = Field(
        default="", description="recorded with the revocation"
    )


class IntrospectionRequest(BaseModel):
    """POST /v1/introspect (RFC 7662 takes a form field; this API takes JSON like every other endpoint)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INTROSPECT_TOKEN)]


class IntrospectionResponse(BaseModel):
    """`{"active": false}` alone for anything that is not a token the broker issued and the caller may see."""

    active: bool
    token_id: str | None = None
    state: str | None = None
    revoked: bool | None = None
    expires_at: datetime | None = None
    reason: str | None = Field(default=None, description="why the token is not active")
    claims: dict[str, Any] | None = Field(default=None, description="the verified claims")
    issuance: IssuanceView | None = None

    @field_serializer("expires_at")
    def _times(self, value: datetime | None) -> str | None:
        return _precise(value)


# -- query parameters of the two listings ------------------------------------------------------------------------

# a page of GET /v1/tokens or /v1/audit holds at most this many items (broker.audit.MAX_PAGE)
MAX_PAGE_ITEMS = 1000
DEFAULT_PAGE_ITEMS = 50
# ?format=jsonl streams at most this many records; narrow the time window (or continue with the cursor of the
# last record's page) for more
MAX_EXPORT = 100_000
IssuanceState = Literal["pending", "issued", "failed", "aborted", "revoked", "expired"]
LogEvent = Literal["issued", "denied", "failed", "aborted", "revoked", "expired"]

_QueryText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_CONTROL)]


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 time with a zone ("2024-05-01T12:00:00Z", "…+02:00"); nothing looser."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with a zone, such as 2024-05-01T12:00:00Z")
    return parse_time(value)


Rfc3339Time = Annotated[datetime, BeforeValidator(parse_rfc3339)]


class _ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "jsonl"] = Field(
        default="json", description="json: one page; jsonl: every matching record, one JSON object per line"
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXPORT,
        description=f"json: items per page, 1..{MAX_PAGE_ITEMS} (default {DEFAULT_PAGE_ITEMS}); "
        f"jsonl: records in all, at most (and by default) {MAX_EXPORT}",
    )
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")
    caller: _QueryText | None = Field(default=None, description="the caller's user name")
    role: RoleName | None = None
    namespace: NamespaceName | None = None
    cluster: _QueryText | None = None
    token_id: _QueryText | None = None
    jti: _QueryText | None = Field(
        default=None, description='a JWT id, as a Kubernetes audit event shows it (credential-id "JTI=…")'
    )
    since: Rfc3339Time | None = Field(default=None, description="RFC 3339; records at or after this time")
    until: Rfc3339Time | None = Field(default=None, description="RFC 3339; records before this time")

    @field_validator("limit")
    @classmethod
    def _page_bound(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value > MAX_PAGE_ITEMS and info.data.get("format", "json") == "json":
            raise ValueError(f"must be at most {MAX_PAGE_ITEMS} per page (format=jsonl streams more)")
        return value

    @property
    def page_size(self) -> int:
        return self.limit or DEFAULT_PAGE_ITEMS

    @property
    def export_size(self) -> int:
        return self.limit or MAX_EXPORT


class TokenListQuery(_ListQuery):
    """Query parameters of GET /v1/tokens."""

    state: IssuanceState | None = Field(default=None, description="the issuance's current state")
    active: bool | None = Field(default=None, description="true: issued and live now; false: everything else")


class AuditListQuery(_ListQuery):
    """Query parameters of GET /v1/audit."""

    event: LogEvent | None = Field(default=None, description="the decision")
