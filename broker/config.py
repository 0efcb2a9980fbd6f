"""config.toml: pydantic models (frozen, unknown keys are errors) and the one function that loads them.

`load_config` reads one file and touches nothing else: no network, no certificate parsing, no existence checks
on the paths it names (those belong to whoever opens them). Relative paths are resolved against the directory
of the config file. Every problem becomes a `ConfigError` whose text has one line per problem, each naming the
file and the key path (`roles[2].max_ttl`), so `token-broker config check` can print it as it is.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from broker._kits.durations import format_duration, parse_duration
from broker._kits.jwt import ALLOWED_ALGORITHMS
from broker._kits.labelselector import parse_label_selector
from broker._kits.names import (
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    namespace_pattern_problem,
)

from .audit.settings import AuditSettings
from .config_paths import resolve_config_path

# TokenRequest refuses expirationSeconds below 10 minutes (pkg/apis/authentication/validation).
TOKEN_REQUEST_MIN_SECONDS = 600

_PROBLEMS = "config_problems"


# ---------------------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: `where` is a key path (`roles[2].max_ttl`), `line 3, column 9`, or "" for the whole file."""

    where: str
    message: str


class ConfigError(Exception):
    def __init__(self, path: Path, problems: Sequence[ConfigProblem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.path}: {p.where}: {p.message}" if p.where else f"{self.path}: {p.message}"
            for p in self.problems
        )


def _raise_problems(problems: Sequence[tuple[str, str]]) -> None:
    """Report several problems from one model validator; `key` is relative to the model being validated."""
    if problems:
        summary = "; ".join(f"{k}: {m}" if k else m for k, m in problems)
        raise PydanticCustomError(_PROBLEMS, "{summary}", {"summary": summary, "problems": list(problems)})


# ---------------------------------------------------------------------------------------------------------------
# Field types


def _duration(value: Any) -> int:
    return parse_duration(value)


def _nonempty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("path must not be empty")
    return value


def _printable(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if value != value.strip() or any(not ch.isprintable() for ch in value):
        raise ValueError("must not have surrounding spaces or control characters")
    if len(value) > 256:
        raise ValueError("must be at most 256 characters")
    return value


def _resource_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case DNS-1123 subdomain: a-z, 0-9, '-', '.')")
    return value


def _role_ref(value: str) -> str:
    return value if value == "*" else _resource_name(value)


def _service_account_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"{value!r} is not a valid service account name (a DNS-1123 subdomain)")
    return value


def _namespace_pattern(value: str) -> str:
    problem = namespace_pattern_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _audience(value: str) -> str:
    if not value or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("an audience must be a non-empty string without spaces")
    return value


def _sha256_hex(value: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", value) is None:
        raise ValueError('must be the 64 hex digits of a SHA-256 digest (printf %s "$KEY" | sha256sum)')
    return value.lower()


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _issuer(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("issuer must be a non-empty string without spaces")
    return value


def _loopback_host(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or (host or "").startswith("127.")


def _trusted_url(value: str) -> str:
    """An issuer or key URL a caller's identity rests on: https, or http on loopback only (tests, sidecars)."""
    _url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and not _loopback_host(parts.hostname):
        raise ValueError(f"{value!r} must be an https URL (plain http is accepted only on loopback)")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must not carry a query or fragment")
    return value


def _algorithm(value: str) -> str:
    if value.upper().startswith("HS") or value.lower() == "none":
        raise ValueError(
            f"{value!r} is refused: only asymmetric signatures are accepted ({', '.join(ALLOWED_ALGORITHMS)})"
        )
    if value not in ALLOWED_ALGORITHMS:
        raise ValueError(f"{value!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
    return value


def _claim_name(value: str) -> str:
    _printable(value)
    return value


def _claim_values(value: Any) -> tuple[str, ...]:
    """A bound claim's accepted values: a string, or a list of them. A TOML boolean or integer is taken in its
    JSON form (true → "true"), the form a token's non-string claim is compared in."""
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("a bound claim needs at least one accepted value")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int):
            out.append(str(item))
        elif isinstance(item, str):
            if not item:
                raise ValueError("a bound claim value must not be empty")
            out.append(item)
        else:
            raise ValueError(f"a bound claim value must be a string, got {_short(item)}")
    return tuple(dict.fromkeys(out))


def _bound_claims(value: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(value))


def split_host_port(value: str) -> tuple[str, int]:
    """ "127.0.0.1:8443" → ("127.0.0.1", 8443); "[::1]:8443" → ("::1", 8443). ValueError when malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^\s:\[\]]+):([0-9]{1,5})", value)
    if m is None:
        raise ValueError(f'{value!r} is not "host:port" (IPv6 as "[::1]:8443")')
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _host_port(value: str) -> str:
    split_host_port(value)
    return value


def _labels(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, val in value.items():
        if not is_qualified_name(key):
            raise ValueError(f"{key!r} is not a valid label key")
        if not is_label_value(val):
            raise ValueError(f"{val!r} (label {key!r}) is not a valid label value")
    return MappingProxyType(dict(value))


def _annotations(value: Mapping[str, str]) -> Mapping[str, str]:
    for key in value:
        if not is_qualified_name(key):
            raise ValueError(f"{key!r} is not a valid annotation key")
    return MappingProxyType(dict(value))


def _selector(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    parse_label_selector(value)
    return value


Duration = Annotated[int, BeforeValidator(_duration)]
ConfigPath = Annotated[Path, BeforeValidator(_nonempty_path), AfterValidator(resolve_config_path)]
Name = Annotated[StrictStr, AfterValidator(_resource_name)]
RoleRef = Annotated[StrictStr, AfterValidator(_role_ref)]
Principal = Annotated[StrictStr, AfterValidator(_printable)]
NamespacePattern = Annotated[StrictStr, AfterValidator(_namespace_pattern)]
Audience = Annotated[StrictStr, AfterValidator(_audience)]
Url = Annotated[StrictStr, AfterValidator(_url)]
HostPort = Annotated[StrictStr, AfterValidator(_host_port)]
PositiveFloat = Annotated[float, Field(gt=0, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, strict=True)]
TrustedUrl = Annotated[StrictStr, AfterValidator(_trusted_url)]
SigningAlgorithm = Annotated[StrictStr, AfterValidator(_algorithm)]
ClaimName = Annotated[StrictStr, AfterValidator(_claim_name)]
_FrozenMapping = PlainSerializer(lambda m: dict(m), return_type=dict[str, str])
Labels = Annotated[Mapping[StrictStr, StrictStr], AfterValidator(_labels), _FrozenMapping]
Annotations = Annotated[Mapping[StrictStr, StrictStr], AfterValidator(_annotations), _FrozenMapping]
BoundClaims = Annotated[
    Mapping[ClaimName, Annotated[tuple[str, ...], BeforeValidator(_claim_values)]],
    AfterValidator(_bound_claims),
    PlainSerializer(lambda m: {k: list(v) for k, v in m.items()}, return_type=dict[str, list[str]]),
]


def _empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------------------------
# Sections


class ServerConfig(_Model):
    listen: HostPort = "127.0.0.1:8443"
    tls_cert: ConfigPath
    tls_key: ConfigPath
    # mTLS: when set, clients may present certificates signed by this CA (CN = user, O = groups).
    client_ca: ConfigPath | None = None
    metrics_listen: HostPort = "127.0.0.1:9090"
    max_body_bytes: Annotated[StrictInt, Field(gt=0)] = 65536
    shutdown_grace_seconds: NonNegativeFloat = 10.0
    tls_reload_interval_seconds: PositiveFloat = 30.0


class ClusterConfig(_Model):
    name: Name
    kubeconfig: ConfigPath | None = None
    context: Principal | None = None
    in_cluster: StrictBool = False
    request_timeout_seconds: PositiveFloat = 10.0
    # None: discovered from /.well-known/openid-configuration
    issuer: Annotated[StrictStr, AfterValidator(_issuer)] | None = None
    jwks_uri: Url | None = None
    # API server URL and CA written into kubeconfigs handed to callers (None: those of the broker's own config)
    server: Url | None = None
    ca_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ClusterConfig:
        problems: list[tuple[str, str]] = []
        if self.in_cluster and self.kubeconfig is not None:
            problems.append(("in_cluster", "set either kubeconfig or in_cluster = true, not both"))
        elif not self.in_cluster and self.kubeconfig is None:
            problems.append(("kubeconfig", "set kubeconfig (a path) or in_cluster = true"))
        if self.context is not None and self.kubeconfig is None:
            problems.append(("context", "context selects a context of kubeconfig; set kubeconfig too"))
        _raise_problems(problems)
        return self


Mode = Literal["token-request", "legacy-secret"]


class RoleConfig(_Model):
    name: Name
    # None only before BrokerConfig fills it in (allowed when exactly one cluster is configured)
    cluster: Name | None = None
    service_account: Annotated[StrictStr, AfterValidator(_service_account_name)]
    create_service_account: StrictBool = True
    service_account_labels: Labels = Field(default_factory=_empty_mapping)
    service_account_annotations: Annotations = Field(default_factory=_empty_mapping)
    namespaces: Annotated[tuple[NamespacePattern, ...], Field(min_length=1)]
    namespace_selector: Annotated[StrictStr | None, AfterValidator(_selector)] = None
    # Seconds. Ignored by legacy-secret roles: a legacy Secret token does not expire.
    default_ttl: Duration = 3600
    max_ttl: Duration = 3600
    # () = the cluster's API audiences
    default_audiences: tuple[Audience, ...] = ()
    # Audiences a caller may ask for besides default_audiences
    allowed_audiences: tuple[Audience, ...] = ()
    mode: Mode = "token-request"
    # Bind each token to a Secret the broker deletes to revoke it (and to end tokens shorter than 10 minutes)
    revocable: StrictBool = False
    # A service account the broker created on demand for this role is deleted by the janitor once the last
    # token issued for it has expired (needs create_service_account).
    ephemeral_service_account: StrictBool = False
    description: StrictStr = ""

    @property
    def cluster_name(self) -> str:
        if self.cluster is None:
            raise ValueError(f"role {self.name!r} has no cluster (load it through BrokerConfig)")
        return self.cluster

    @model_validator(mode="after")
    def _consistent(self) -> RoleConfig:
        problems: list[tuple[str, str]] = []
        if self.mode == "legacy-secret":
            if self.revocable:
                problems.append(("revocable", "revocable applies only to token-request roles"))
            if self.default_audiences or self.allowed_audiences:
                key = "default_audiences" if self.default_audiences else "allowed_audiences"
                problems.append((key, "legacy-secret tokens carry no audience"))
        else:
            if self.default_ttl > self.max_ttl:
                problems.append(
                    (
                        "default_ttl",
                        f"default_ttl ({format_duration(self.default_ttl)}) exceeds "
                        f"max_ttl ({format_duration(self.max_ttl)})",
                    )
                )
            if not self.revocable:
                for key, value in (("default_ttl", self.default_ttl), ("max_ttl", self.max_ttl)):
                    if value < TOKEN_REQUEST_MIN_SECONDS:
                        problems.append(
                            (
                                key,
                                f"{format_duration(value)} is below the 10m minimum of the TokenRequest API; "
                                "set revocable = true to issue shorter tokens",
                            )
                        )
        _raise_problems(problems)
        return self


class RateLimitConfig(_Model):
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute` (fractions allowed)."""

    per_minute: PositiveFloat = 600.0
    burst: Annotated[StrictInt, Field(ge=1)] = 100


class GrantConfig(_Model):
    # None: BrokerConfig names it "grant-<index>" (its index in [[grants]], counted from 0 like key paths)
    name: Principal | None = None
    users: tuple[Principal, ...] = ()
    groups: tuple[Principal, ...] = ()
    # role names, or "*" for every role
    roles: Annotated[tuple[RoleRef, ...], Field(min_length=1)]
    namespaces: Annotated[tuple[NamespacePattern, ...], Field(min_length=1)] = ("*",)
    # A cap on the ttl below the role's max_ttl (a higher value has no effect)
    max_ttl: Duration | None = None
    # OIDC callers only: every named claim must equal (or glob-match, `*` and `?`) one of the values
    claims: BoundClaims = Field(default_factory=lambda: MappingProxyType({}))
    # None: [auth.rate_limit]
    rate_limit: RateLimitConfig | None = None

    @model_validator(mode="after")
    def _someone(self) -> GrantConfig:
        if not self.users and not self.groups:
            _raise_problems([("users", "a grant needs at least one entry in users or groups")])
        return self


class MtlsConfig(_Model):
    # Defaults to true when server.client_ca is set, false otherwise.
    enabled: StrictBool = True
    # Fixed like kube-apiserver: Subject CN is the user, each O is a group.
    user_from: Literal["cn"] = "cn"
    groups_from: Literal["o"] = "o"


class ApiKeyConfig(_Model):
    # The caller's user name
    name: Principal
    sha256: Annotated[StrictStr, AfterValidator(_sha256_hex)]
    groups: tuple[Principal, ...] = ()


class OidcIssuerConfig(_Model):
    """One trusted OIDC issuer ([[auth.oidc]]): a CI system that hands its jobs signed identity tokens."""

    # the exact `iss` of its tokens; discovery is read from <issuer>/.well-known/openid-configuration
    issuer: TrustedUrl
    # the `aud` a token must carry (set it in the CI job, e.g. GitLab `id_tokens: {aud: ...}`)
    audience: Audience
    # None: the jwks_uri of the discovery document
    jwks_uri: TrustedUrl | None = None
    # CA bundle for the issuer's TLS certificate (None: the system trust store)
    ca_file: ConfigPath | None = None
    algorithms: Annotated[tuple[SigningAlgorithm, ...], Field(min_length=1)] = ("RS256", "ES256")
    # clock skew allowed on exp, nbf and iat (kube-apiserver allows 60 s)
    leeway_seconds: Annotated[StrictInt, Field(ge=0, le=600)] = 60
    # a token issued (iat) longer ago than this is refused even if it has not expired
    max_token_age: Duration = 3600
    username_claim: ClaimName = "sub"
    # None: "<issuer>#", unless username_claim is "email" (kube-apiserver's --oidc-username-prefix default);
    # "" for none
    username_prefix: StrictStr | None = None
    # None: no groups from the token
    groups_claim: ClaimName | None = None
    groups_prefix: StrictStr = ""
    # groups every caller of this issuer is in (for grants that also bind claims)
    groups: tuple[Principal, ...] = ()

    @property
    def effective_username_prefix(self) -> str:
        if self.username_prefix is not None:
            return self.username_prefix
        return "" if self.username_claim == "email" else f"{self.issuer}#"


class KubernetesAuthConfig(_Model):
    """[auth.kubernetes]: bearer service-account tokens checked with a TokenReview."""

    enabled: StrictBool = False
    # the configured cluster that reviews tokens (None: the only one)
    cluster: Name | None = None
    # the audiences a caller's token must be issued for (`kubectl create token --audience token-broker`)
    audiences: Annotated[tuple[Audience, ...], Field(min_length=1)] = ("token-broker",)
    # how long a review (either answer) is reused, keyed by the token's SHA-256; 0: not cached
    cache_seconds: NonNegativeFloat = 10.0


class AuthConfig(_Model):
    # Callers in one of these groups may list every issuance and audit event and revoke anyone's token; every
    # other caller sees and revokes only its own.
    operator_groups: tuple[Principal, ...] = ("token-broker:operators",)
    mtls: MtlsConfig = Field(default_factory=MtlsConfig)
    api_keys: tuple[ApiKeyConfig, ...] = ()
    oidc: tuple[OidcIssuerConfig, ...] = ()
    kubernetes: KubernetesAuthConfig = Field(default_factory=KubernetesAuthConfig)
    # per caller, for grants without a rate_limit of their own (and requests no grant matches)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)


# ---------------------------------------------------------------------------------------------------------------
# The whole file


def _duplicates(names: Iterable[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    dups: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        if name in seen:
            dups.append((i, name))
        seen.add(name)
    return dups


def _fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Defaults that depend on other sections, applied to the raw data before field validation."""
    data = dict(data)
    clusters = data.get("clusters")
    if isinstance(clusters, list | tuple) and len(clusters) == 1:
        only = clusters[0]
        only_name = only.get("name") if isinstance(only, dict) else getattr(only, "name", None)
        roles = data.get("roles")
        if isinstance(only_name, str) and isinstance(roles, list | tuple):
            data["roles"] = [_with_default(r, "cluster", only_name) for r in roles]
    grants = data.get("grants")
    if isinstance(grants, list | tuple):
        data["grants"] = [_with_default(g, "name", f"grant-{i}") for i, g in enumerate(grants)]
    server = data.get("server")
    auth = data.get("auth", {})
    if isinstance(server, dict) and isinstance(auth, dict):
        mtls = auth.get("mtls", {})
        if isinstance(mtls, dict) and "enabled" not in mtls:
            data["auth"] = {**auth, "mtls": {**mtls, "enabled": server.get("client_ca") is not None}}
    # validated like a written section, so its default relative paths resolve against the config file too
    data.setdefault("audit", {})
    return data


def _with_default(item: Any, key: str, value: str) -> Any:
    if isinstance(item, dict):
        return item if item.get(key) is not None else {**item, key: value}
    if isinstance(item, BaseModel) and getattr(item, key, None) is None:
        return item.model_copy(update={key: value})
    return item


class JanitorConfig(_Model):
    """Expiry sweeps and early revocation; one replica at a time, elected through a coordination.k8s.io Lease."""

    enabled: StrictBool = True
    # how often the leader looks for bound Secrets past expiry / revoke-at
    interval_seconds: PositiveFloat = 10.0
    # the cluster holding the Lease (optional when exactly one cluster is configured)
    cluster: Name | None = None
    lease_namespace: Name = "default"
    lease_name: Name = "kube-token-broker-janitor"
    # client-go leaderelection defaults
    lease_duration_seconds: PositiveFloat = 15.0
    renew_deadline_seconds: PositiveFloat = 10.0
    retry_period_seconds: PositiveFloat = 2.0
    # pending records older than this are repaired (their bound Secret deleted, the record aborted) at start-up
    repair_after_seconds: NonNegativeFloat = 60.0

    @model_validator(mode="after")
    def _timings(self) -> JanitorConfig:
        problems: list[tuple[str, str]] = []
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            problems.append(
                (
                    "renew_deadline_seconds",
                    "need retry_period_seconds < renew_deadline_seconds < lease_duration_seconds",
                )
            )
        _raise_problems(problems)
        return self


class BrokerConfig(_Model):
    server: ServerConfig
    clusters: Annotated[tuple[ClusterConfig, ...], Field(min_length=1)]
    roles: tuple[RoleConfig, ...] = ()
    grants: tuple[GrantConfig, ...] = ()
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    janitor: JanitorConfig = Field(default_factory=JanitorConfig)

    @property
    def janitor_cluster(self) -> str:
        return self.janitor.cluster or self.clusters[0].name

    def cluster(self, name: str) -> ClusterConfig | None:
        return next((c for c in self.clusters if c.name == name), None)

    @property
    def token_review_cluster(self) -> str:
        """The cluster [auth.kubernetes] sends TokenReviews to."""
        return self.auth.kubernetes.cluster or self.clusters[0].name

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _fill_defaults(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _cross_check(self) -> BrokerConfig:
        problems: list[tuple[str, str]] = []
        for i, name in _duplicates(c.name for c in self.clusters):
            problems.append((f"clusters[{i}].name", f"duplicate cluster name {name!r}"))
        for i, name in _duplicates(r.name for r in self.roles):
            problems.append((f"roles[{i}].name", f"duplicate role name {name!r}"))
        for i, name in _duplicates(g.name or "" for g in self.grants):
            problems.append(
                (f"grants[{i}].name", f"duplicate grant name {name!r} (unnamed grants are grant-<index>)")
            )
        for i, name in _duplicates(k.name for k in self.auth.api_keys):
            problems.append((f"auth.api_keys[{i}].name", f"duplicate API key name {name!r}"))
        for i, _digest in _duplicates(k.sha256 for k in self.auth.api_keys):
            problems.append((f"auth.api_keys[{i}].sha256", "the same key digest appears twice"))

        cluster_names = {c.name for c in self.clusters}
        for i, role in enumerate(self.roles):
            if role.cluster is None:
                problems.append(
                    (f"roles[{i}].cluster", f"required: {len(self.clusters)} clusters are configured")
                )
            elif role.cluster not in cluster_names:
                problems.append((f"roles[{i}].cluster", f"unknown cluster {role.cluster!r}"))

        roles = {r.name: r for r in self.roles}
        for i, grant in enumerate(self.grants):
            for j, ref in enumerate(grant.roles):
                if ref == "*":
                    continue
                target = roles.get(ref)
                if target is None:
                    problems.append((f"grants[{i}].roles[{j}]", f"unknown role {ref!r}"))
                elif (
                    grant.max_ttl is not None
                    and grant.max_ttl < TOKEN_REQUEST_MIN_SECONDS
                    and target.mode == "token-request"
                    and not target.revocable
                ):
                    problems.append(
                        (
                            f"grants[{i}].max_ttl",
                            f"{format_duration(grant.max_ttl)} is below the 10m minimum of role "
                            f"{ref!r}, which is not revocable",
                        )
                    )

        for i, issuer in _duplicates(o.issuer for o in self.auth.oidc):
            problems.append((f"auth.oidc[{i}].issuer", f"issuer {issuer!r} is configured twice"))
        kube = self.auth.kubernetes
        if kube.enabled:
            if kube.cluster is None and len(self.clusters) > 1:
                problems.append(
                    ("auth.kubernetes.cluster", f"required: {len(self.clusters)} clusters are configured")
                )
            elif kube.cluster is not None and kube.cluster not in cluster_names:
                problems.append(("auth.kubernetes.cluster", f"unknown cluster {kube.cluster!r}"))
        if not self.auth.oidc:
            for i, grant in enumerate(self.grants):
                if grant.claims:
                    problems.append(
                        (f"grants[{i}].claims", "bound claims apply only to OIDC callers; add [[auth.oidc]]")
                    )

        for i, role in enumerate(self.roles):
            if role.ephemeral_service_account and not role.create_service_account:
                problems.append(
                    (
                        f"roles[{i}].ephemeral_service_account",
                        "only an account the broker creates (create_service_account = true) can be ephemeral",
                    )
                )
        janitor_cluster = self.janitor.cluster
        if janitor_cluster is not None and janitor_cluster not in cluster_names:
            problems.append(("janitor.cluster", f"unknown cluster {janitor_cluster!r}"))

        if self.auth.mtls.enabled and self.server.client_ca is None:
            problems.append(("auth.mtls.enabled", "mTLS needs server.client_ca"))
        if not (self.auth.mtls.enabled or self.auth.api_keys or self.auth.oidc or kube.enabled):
            problems.append(
                (
                    "auth",
                    "no authentication method: set server.client_ca (mTLS), add [[auth.api_keys]] or "
                    "[[auth.oidc]], or enable [auth.kubernetes]",
                )
            )
        _raise_problems(problems)
        return self


# ---------------------------------------------------------------------------------------------------------------
# Loading

_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_TYPE_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dict_type": "expected a table",
    "mapping_type": "expected a table",
    "path_type": "expected a path (a string)",
}


def _key_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _join_key(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base:
        return rel
    return f"{base}{rel}" if rel.startswith("[") else f"{base}.{rel}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _problems_from(exc: ValidationError) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    errors = exc.errors(include_url=False)
    item_locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        # A list whose items failed is also "too short after validation": noise once the items are reported.
        if kind == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o in item_locs):
            continue
        key = _key_path(loc)
        ctx = err.get("ctx") or {}
        if kind == _PROBLEMS:
            problems.extend(ConfigProblem(_join_key(key, rel), msg) for rel, msg in ctx["problems"])
            continue
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            message = "unknown key (misspelt, or in the wrong section?)"
        elif kind in _TYPE_MESSAGES:
            message = f"{_TYPE_MESSAGES[kind]}, got {_short(err['input'])}"
        elif kind == "literal_error":
            message = f"expected {ctx.get('expected', 'another value')}, got {_short(err['input'])}"
        elif kind == "too_short":
            count = ctx.get("min_length", 1)
            message = f"must have at least {count} {'entry' if count == 1 else 'entries'}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be", 1)
        problems.append(ConfigProblem(key, message))
    return problems


def parse_config(text: str, path: Path) -> BrokerConfig:
    """Validate TOML text as if read from `path` (used for messages and to resolve relative paths)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        if m:
            where = f"line {m.group(2)}, column {m.group(3)}"
            raise ConfigError(path, [ConfigProblem(where, f"invalid TOML: {m.group(1)}")]) from None
        raise ConfigError(path, [ConfigProblem("", f"invalid TOML: {exc}")]) from None
    try:
        return BrokerConfig.model_validate(data, context={"base_dir": path.absolute().parent})
    except ValidationError as exc:
        raise ConfigError(path, _problems_from(exc)) from None


def load_config(path: Path | str) -> BrokerConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, [ConfigProblem("", "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(path, [ConfigProblem("", "is a directory, not a config file")]) from None
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read config file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, [ConfigProblem("", f"not UTF-8 text (byte {exc.start}); TOML files are UTF-8")]
        ) from None
    return parse_config(text, path)
