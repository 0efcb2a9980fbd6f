"""The rules that span sections of config.toml, one small function each, run in this order once every section
has validated on its own. Each yields (key path, problem)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from broker._kits.durations import format_duration
from broker.domain.floors import TOKEN_REQUEST_MIN_SECONDS

if TYPE_CHECKING:
    from .model import BrokerConfig

Problem = tuple[str, str]
Check = Callable[["BrokerConfig"], Iterable[Problem]]


def _duplicates(names: Iterable[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    dups: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        if name in seen:
            dups.append((i, name))
        seen.add(name)
    return dups


def unique_clusters(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, name in _duplicates(c.name for c in cfg.clusters):
        yield f"clusters[{i}].name", f"duplicate cluster name {name!r}"


def unique_roles(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, name in _duplicates(r.name for r in cfg.roles):
        yield f"roles[{i}].name", f"duplicate role name {name!r}"


def unique_grants(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, name in _duplicates(g.name or "" for g in cfg.grants):
        yield f"grants[{i}].name", f"duplicate grant name {name!r} (unnamed grants are grant-<index>)"


def unique_api_keys(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, name in _duplicates(k.name for k in cfg.auth.api_keys):
        yield f"auth.api_keys[{i}].name", f"duplicate API key name {name!r}"
    for i, _digest in _duplicates(k.sha256 for k in cfg.auth.api_keys):
        yield f"auth.api_keys[{i}].sha256", "the same key digest appears twice"


def role_clusters(cfg: BrokerConfig) -> Iterator[Problem]:
    names = {c.name for c in cfg.clusters}
    for i, role in enumerate(cfg.roles):
        if role.cluster is None:
            yield f"roles[{i}].cluster", f"required: {len(cfg.clusters)} clusters are configured"
        elif role.cluster not in names:
            yield f"roles[{i}].cluster", f"unknown cluster {role.cluster!r}"


def grant_roles(cfg: BrokerConfig) -> Iterator[Problem]:
    """Every role a grant names exists, and a grant's max_ttl does not go below the floor of a role that
    cannot revoke early."""
    roles = {r.name: r for r in cfg.roles}
    for i, grant in enumerate(cfg.grants):
        for j, ref in enumerate(grant.roles):
            if ref == "*":
                continue
            target = roles.get(ref)
            if target is None:
                yield f"grants[{i}].roles[{j}]", f"unknown role {ref!r}"
            elif (
                grant.max_ttl is not None and grant.max_ttl < TOKEN_REQUEST_MIN_SECONDS and target.needs_floor
            ):
                yield (
                    f"grants[{i}].max_ttl",
                    f"{format_duration(grant.max_ttl)} is below the 10m minimum of role {ref!r}, which is not revocable",
                )


def unique_issuers(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, issuer in _duplicates(o.issuer for o in cfg.auth.oidc):
        yield f"auth.oidc[{i}].issuer", f"issuer {issuer!r} is configured twice"


def review_cluster(cfg: BrokerConfig) -> Iterator[Problem]:
    kube = cfg.auth.kubernetes
    if not kube.enabled:
        return
    if kube.cluster is None and len(cfg.clusters) > 1:
        yield "auth.kubernetes.cluster", f"required: {len(cfg.clusters)} clusters are configured"
    elif kube.cluster is not None and cfg.cluster(kube.cluster) is None:
        yield "auth.kubernetes.cluster", f"unknown cluster {kube.cluster!r}"


def claims_need_oidc(cfg: BrokerConfig) -> Iterator[Problem]:
    if cfg.auth.oidc:
        return
    for i, grant in enumerate(cfg.grants):
        if grant.claims:
            yield f"grants[{i}].claims", "bound claims apply only to OIDC callers; add [[auth.oidc]]"


def ephemeral_accounts(cfg: BrokerConfig) -> Iterator[Problem]:
    for i, role in enumerate(cfg.roles):
        if role.ephemeral_service_account and not role.create_service_account:
            yield (
                f"roles[{i}].ephemeral_service_account",
                "only an account the broker creates (create_service_account = true) can be ephemeral",
            )


def janitor_cluster(cfg: BrokerConfig) -> Iterator[Problem]:
    name = cfg.janitor.cluster
    if name is not None and cfg.cluster(name) is None:
        yield "janitor.cluster", f"unknown cluster {name!r}"


def mtls_needs_client_ca(cfg: BrokerConfig) -> Iterator[Problem]:
    if cfg.auth.mtls.enabled and cfg.server.client_ca is None:
        yield "auth.mtls.enabled", "mTLS needs server.client_ca"


def some_authentication(cfg: BrokerConfig) -> Iterator[Problem]:
    auth = cfg.auth
    if not (auth.mtls.enabled or auth.api_keys or auth.oidc or auth.kubernetes.enabled):
        yield (
            "auth",
            "no authentication method: set server.client_ca (mTLS), add [[auth.api_keys]] or "
            "[[auth.oidc]], or enable [auth.kubernetes]",
        )


CHECKS: tuple[Check, ...] = (
    unique_clusters,
    unique_roles,
    unique_grants,
    unique_api_keys,
    role_clusters,
    grant_roles,
    unique_issuers,
    review_cluster,
    claims_need_oidc,
    ephemeral_accounts,
    janitor_cluster,
    mtls_needs_client_ca,
    some_authentication,
)


def cross_section_problems(cfg: BrokerConfig) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(cfg)]
