"""The issuance use case: the only place that orders the steps of handing out a token.

rate limit → policy → write-ahead audit record → ensure the service account → (revocable) a Secret to bind
to → TokenRequest → verify → complete the audit record → hand over.

No record, no token: the pending record is committed before anything is created in the cluster, and a token is
returned only after its record says `issued`. Every failure after the binding Secret exists rolls it back, so
a refused or failed issuance leaves no object behind that could make a token valid.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from broker import metric_labels, metrics
from broker.audit.store import AuditStore
from broker.domain.errors import DENIALS, BrokerError, ErrorKind, unprocessable
from broker.domain.identity import Caller
from broker.kube.objects import SecretRef
from broker.policy import Grant, Match, Policy

from .clusters import ClusterHandle
from .minting import LEGACY_WAIT_SECONDS, Minted, Minter
from .ports import IssuedToken, IssueRequest, RoleInfo
from .ratelimits import CallerRateLimits
from .revocation import Revocation
from .trail import IssuanceTrail

log = logging.getLogger(__name__)

# the label each kind of refusal or failure is counted under
_DENIED: dict[ErrorKind, metric_labels.DenyKind] = {
    ErrorKind.UNKNOWN_ROLE: "unknown_role",
    ErrorKind.NO_GRANT: "no_grant",
    ErrorKind.NAMESPACE: "namespace",
    ErrorKind.NAMESPACE_SELECTOR: "namespace_selector",
    ErrorKind.TTL: "ttl",
    ErrorKind.AUDIENCE: "audience",
    ErrorKind.INVALID_REQUEST: "invalid_request",
}
_FAILED: dict[ErrorKind, metric_labels.FailKind] = {
    ErrorKind.UPSTREAM_REFUSED: "upstream_refused",
    ErrorKind.UPSTREAM_UNAVAILABLE: "upstream_unavailable",
    ErrorKind.VERIFICATION: "verification",
    ErrorKind.AUDIT_UNAVAILABLE: "audit",
}


class Issuer:
    """Implements IssuancePort."""

    def __init__(
        self,
        policy: Callable[[], Policy],
        clusters: Mapping[str, ClusterHandle],
        store: AuditStore,
        *,
        rate_limits: CallerRateLimits | None = None,
        early_revocation: bool = True,
        legacy_wait_seconds: float = LEGACY_WAIT_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # a callable, not a Policy: SIGHUP swaps the policy and each issuance reads one snapshot
        self._policy = policy
        self._clusters = clusters
        self._store = store
        self._rate_limits = rate_limits
        # whether a janitor runs that deletes bound Secrets at revoke-at (TTLs below the 600 s floor)
        self._early_revocation = early_revocation
        self._clock = clock
        self._trail = IssuanceTrail(store, clock)
        self._revocation = Revocation(store, {name: h.client for name, h in clusters.items()}, clock=clock)
        self._minter = Minter(
            self._revocation.roll_back, legacy_wait_seconds=legacy_wait_seconds, clock=clock
        )

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        clusters = self._clusters
        return [
            RoleInfo(
                name=view.name,
                description=view.description,
                cluster=view.cluster,
                namespaces=view.namespaces,
                default_ttl=view.default_ttl or 0,
                max_ttl=view.max_ttl or 0,
                mode=view.mode,
                revocable=view.revocable,
                cluster_server=clusters[view.cluster].server_url if view.cluster in clusters else "",
                cluster_ca_pem=clusters[view.cluster].ca_pem if view.cluster in clusters else None,
            )
            for view in self._policy().usable_roles(caller)
        ]

    async def ready(self) -> list[str]:
        async def probe(name: str, ping: Callable[[], Awaitable[None]]) -> str | None:
            try:
                await ping()
            except BrokerError:
                return name
            return None

        probes = [probe("audit store", self._store.ping)]
        probes += [probe(f"cluster {h.name}", h.client.discovery.ping) for h in self._clusters.values()]
        return [r for r in await asyncio.gather(*probes) if r]

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        """Issue a token or raise BrokerError (429 rate limit, 403 policy, 422 bad ttl, 502 upstream, 503)."""
        policy = self._policy()
        match = policy.match(caller, req.role, req.namespace)
        if self._rate_limits is not None:
            # before anything else: a refused request costs the API server and the audit store nothing
            self._rate_limits.take(caller, match.rate_limit)
        started = time.perf_counter()
        try:
            issued = await self._issue(policy, match, caller, req)
        except BrokerError as exc:
            elapsed = time.perf_counter() - started
            if exc.kind in DENIALS:
                metrics.token_denied(_DENIED[exc.kind], elapsed)
            else:
                metrics.token_failed(req.role, _FAILED.get(exc.kind, "internal"), elapsed)
            raise
        except BaseException:
            metrics.token_failed(req.role, "internal", time.perf_counter() - started)
            raise
        role = policy.role(issued.role)
        namespaces = role.namespaces if role else ()
        mode = role.mode if role else "token-request"
        metrics.token_issued(issued.role, issued.namespace, namespaces, mode, time.perf_counter() - started)
        return issued

    async def _issue(self, policy: Policy, match: Match, caller: Caller, req: IssueRequest) -> IssuedToken:
        grant = await self._granted(policy, match, caller, req)
        cluster = self._clusters[grant.role.cluster]
        token_id = str(uuid.uuid4())
        # write-ahead: if this cannot be committed (503), nothing has been created yet
        await self._trail.begin(token_id, caller, req, grant)
        minted = await self._mint(cluster, caller, grant, token_id)
        revoke_at = (
            minted.issued_at + timedelta(seconds=grant.revoke_after_seconds)
            if grant.revoke_after_seconds is not None
            else None
        )
        try:
            await self._trail.complete(token_id, minted, revoke_at)
        except BaseException:
            # no completed record, no token: kill what can be killed before refusing (a Secret that cannot be
            # deleted now is found by repair: the record is still pending)
            if minted.secret is not None and not grant.role.legacy:
                await self._revocation.roll_back(cluster.client, minted.secret)
            raise
        log.info(
            "issued token",
            extra={
                "token_id": token_id,
                "jti": minted.jti,
                "role": grant.role.name,
                "namespace": grant.namespace,
                "caller": caller.user,
                "grant": grant.grant_name,
            },
        )
        return _handed_over(token_id, grant, cluster, minted, revoke_at)

    async def _granted(self, policy: Policy, match: Match, caller: Caller, req: IssueRequest) -> Grant:
        """The policy's answer (a denial is recorded before it is raised)."""
        try:
            labels: dict[str, str] | None = None
            if match.needs_namespace_labels:
                # only for a caller who may use the role here: a refused one costs the API server nothing
                assert match.role is not None and match.namespace is not None
                cluster = self._clusters[match.role.role.cluster]
                labels = await cluster.client.discovery.namespace_labels(match.namespace)
            audiences = list(req.audiences) if req.audiences is not None else None
            grant = policy.grant(match, req.ttl_seconds, audiences, labels)
            if grant.revoke_after_seconds is not None and not self._early_revocation:
                raise unprocessable(
                    f"ttl {grant.revoke_after_seconds}s is below the Kubernetes minimum of 600s; early "
                    "revocation needs the janitor, which is disabled ([janitor] enabled = false)",
                    kind=ErrorKind.TTL,
                )
        except BrokerError as exc:
            if exc.kind in DENIALS:
                await self._trail.deny(caller, req, exc)
            raise
        return grant

    async def _mint(self, cluster: ClusterHandle, caller: Caller, grant: Grant, token_id: str) -> Minted:
        """The token, or the failure recorded and raised."""
        # binding Secrets a failed issuance could not delete: the record then stays pending, and the janitor's
        # repair deletes them by their token-id label (a `failed` record is never looked at again)
        left_behind: list[SecretRef] = []
        try:
            return await self._minter.mint(cluster, caller, grant, token_id, left_behind)
        except BrokerError as exc:
            if not left_behind:
                await self._trail.fail(token_id, exc.reason or exc.detail, exc.status)
            raise
        except BaseException as exc:
            if not left_behind:
                await self._trail.fail(token_id, f"unexpected {type(exc).__name__}", 500)
            raise


def _handed_over(
    token_id: str, grant: Grant, cluster: ClusterHandle, minted: Minted, revoke_at: datetime | None
) -> IssuedToken:
    return IssuedToken(
        token=minted.token,
        token_id=token_id,
        jti=minted.jti or "",
        issued_at=minted.issued_at,
        # a short revocable token dies at revoke-at, whatever its JWT exp says: that is what the caller (and
        # kubectl's credential cache) must plan for
        expires_at=revoke_at or minted.expires_at,
        namespace=grant.namespace,
        service_account=grant.role.service_account,
        audiences=minted.audiences,
        role=grant.role.name,
        cluster=cluster.name,
        server_url=cluster.server_url,
        ca_pem=cluster.ca_pem,
        warnings=minted.warnings,
    )
