"""Request and response bodies of the v1 HTTP API: validated here, nowhere else (pydantic only at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer, field_validator

from broker.durations import parse_duration
from broker.render import rfc3339

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
    return None if value is None else rfc3339(value)


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
