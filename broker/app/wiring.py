"""From settings to the broker's own objects: the domain's roles and grants, the policy, the authenticators, the
connected clusters. The only place where config.toml's models meet the components that do the work."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from broker import metrics
from broker.audit.store import AuditStore
from broker.background.leader import LeaseElector, default_identity
from broker.callers.api_key import ApiKeyAuthenticator
from broker.callers.base import Authenticator
from broker.callers.chain import AuthenticatorChain
from broker.callers.json_fetch import JsonFetcher
from broker.callers.kubernetes import TokenReviewAuthenticator, TokenReviewer
from broker.callers.mtls import MtlsAuthenticator
from broker.callers.oidc import OidcAuthenticator, OidcIssuer, OidcSettings, issuer_ssl_context
from broker.domain.roles import GrantRule, RateLimit, Role
from broker.http.routes import build_http_app
from broker.kube import Cluster
from broker.kube.verify import ClusterTokenVerifier
from broker.policy import Policy
from broker.settings import BrokerConfig, GrantConfig, OidcIssuerConfig, RateLimitConfig, RoleConfig
from broker.usecases.access import Visibility
from broker.usecases.clusters import ClusterHandle
from broker.usecases.correlations import Correlator
from broker.usecases.introspection import Introspector
from broker.usecases.issuance import Issuer
from broker.usecases.ratelimits import CallerRateLimits
from broker.usecases.records import Records
from broker.usecases.revocation import Revocation, Revocations

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    D = TypeVar("D", bound=DataclassInstance)


def _plain(cls: type[D], section: BaseModel, **given: Any) -> D:
    """A domain dataclass from the same-named fields of a validated section, plus the fields `given`."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in given]
    return cls(**{name: getattr(section, name) for name in names}, **given)


def role_from(cfg: RoleConfig) -> Role:
    return _plain(Role, cfg, cluster=cfg.cluster_name)


def rate_limit_from(cfg: RateLimitConfig) -> RateLimit:
    return _plain(RateLimit, cfg)


def grant_from(cfg: GrantConfig, index: int) -> GrantRule:
    limit = rate_limit_from(cfg.rate_limit) if cfg.rate_limit is not None else None
    return _plain(GrantRule, cfg, name=cfg.name or f"grant-{index}", rate_limit=limit)


def policy_from(cfg: BrokerConfig) -> Policy:
    return Policy(
        [role_from(r) for r in cfg.roles],
        [grant_from(g, i) for i, g in enumerate(cfg.grants)],
        rate_limit_from(cfg.auth.rate_limit),
    )


def oidc_settings_from(cfg: OidcIssuerConfig) -> OidcSettings:
    return _plain(
        OidcSettings,
        cfg,
        max_token_age_seconds=cfg.max_token_age,
        username_prefix=cfg.effective_username_prefix,
    )


def authenticators_from(
    cfg: BrokerConfig, clusters: Callable[[], Mapping[str, ClusterHandle]]
) -> list[Authenticator]:
    """The chain in order: client certificate, API key, OIDC token, Kubernetes TokenReview.

    clusters: the connected clusters, looked up per TokenReview (they connect after the chain is built).
    Raises ValueError when an OIDC issuer's CA bundle cannot be read.
    """
    found: list[Authenticator] = []
    if cfg.server.client_ca is not None and cfg.auth.mtls.enabled:
        found.append(MtlsAuthenticator())
    if cfg.auth.api_keys:
        found.append(ApiKeyAuthenticator([(k.name, k.sha256, k.groups) for k in cfg.auth.api_keys]))
    kube = cfg.auth.kubernetes
    if cfg.auth.oidc:
        issuers = [
            OidcIssuer(
                oidc_settings_from(o),
                JsonFetcher(ssl_context=issuer_ssl_context(str(o.ca_file) if o.ca_file else None)),
            )
            for o in cfg.auth.oidc
        ]
        found.append(OidcAuthenticator(issuers, defer_unknown_issuers=kube.enabled))
    if kube.enabled:
        name = cfg.token_review_cluster

        def reviewer() -> TokenReviewer | None:
            handle = clusters().get(name)
            return handle.client.reviews if handle is not None else None

        found.append(
            TokenReviewAuthenticator(
                reviewer, audiences=kube.audiences, cluster=name, cache_seconds=kube.cache_seconds
            )
        )
    return found


async def connect_clusters(cfg: BrokerConfig) -> dict[str, ClusterHandle]:
    handles: dict[str, ClusterHandle] = {}
    try:
        for cluster in cfg.clusters:
            client = await Cluster.connect(
                cluster.name,
                kubeconfig=cluster.kubeconfig,
                context=cluster.context,
                in_cluster=cluster.in_cluster,
                request_timeout=cluster.request_timeout_seconds,
            )
            verifier = ClusterTokenVerifier(
                client.discovery, issuer=cluster.issuer, jwks_uri=cluster.jwks_uri
            )
            ca_pem = cluster.ca_file.read_bytes() if cluster.ca_file else client.ca_pem
            handles[cluster.name] = ClusterHandle(
                cluster.name, client, verifier, cluster.server or client.server_url, ca_pem
            )
    except BaseException:
        for handle in handles.values():
            await handle.client.close()
        raise
    return handles


def elector_from(cfg: BrokerConfig, clusters: Mapping[str, ClusterHandle]) -> LeaseElector | None:
    """The janitor's Lease election ([janitor] enabled = false: none, and no sweeps)."""
    settings = cfg.janitor
    if not settings.enabled:
        return None
    return LeaseElector(
        clusters[cfg.janitor_cluster].client.leases,
        namespace=settings.lease_namespace,
        name=settings.lease_name,
        identity=default_identity(),
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
        on_change=metrics.set_janitor_leader,
    )


def http_app_from(
    cfg: Callable[[], BrokerConfig],
    policy: Callable[[], Policy],
    chain: AuthenticatorChain,
    clusters: Mapping[str, ClusterHandle],
    store: AuditStore,
) -> web.Application:
    """The API with its use cases. `cfg` and `policy` are read per request: a SIGHUP reload applies at once."""
    kube = {name: handle.client for name, handle in clusters.items()}
    visibility = Visibility(lambda: cfg().auth.operator_groups)
    rate_limits = CallerRateLimits(on_limited=lambda _method, _user, _scope: metrics.rate_limited_request())
    issuer = Issuer(policy, clusters, store, rate_limits=rate_limits, early_revocation=cfg().janitor.enabled)
    return build_http_app(
        authenticator=chain,
        issuance=issuer,
        records=Records(store, visibility),
        revocation=Revocations(store, Revocation(store, kube), visibility),
        introspection=Introspector(store, clusters, visibility),
        correlation=Correlator(store, visibility),
        max_body_bytes=cfg().server.max_body_bytes,
    )
