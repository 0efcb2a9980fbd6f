"""The issuance use case: the only place that orders the steps of handing out a token.

policy → write-ahead audit record → ensure the service account → (revocable) a Secret to bind to →
TokenRequest → verify → complete the audit record → hand over.

No record, no token: the pending record is committed before anything is created in the cluster, and a token is
returned only after its record says `issued`. Every failure after the binding Secret exists deletes it again, so
a refused or failed issuance leaves no object behind that could make a token valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from broker import metrics
from broker._kits.rfc3339 import format_time
from broker.audit.records import AuditRecord, SecretBinding
from broker.audit.store import AuditStore
from broker.contracts import IssuedToken, IssueRequest, RoleInfo
from broker.domain.errors import DENIALS, BrokerError, ErrorKind, unprocessable
from broker.domain.identity import Caller
from broker.kube import Cluster
from broker.kube.labels import CALLER_ANNOTATION, EXPIRES_ANNOTATION, MANAGED_BY, ROLE_LABEL, TOKEN_ID_LABEL
from broker.kube.objects import SecretRef
from broker.kube.verify import ClusterTokenVerifier
from broker.policy import Grant, Policy

log = logging.getLogger(__name__)
T = TypeVar("T")


# A legacy Secret token is written asynchronously by the token controller; wait this long at most.
LEGACY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class ClusterHandle:
    """One configured cluster as the issuer uses it."""

    name: str
    client: Cluster
    verifier: ClusterTokenVerifier
    # what a rendered kubeconfig points at (config override, else the broker's own view of the cluster)
    server_url: str
    ca_pem: bytes | None


@dataclass(frozen=True)
class _Minted:
    """A verified token not yet handed over."""

    token: str
    jti: str | None
    issued_at: datetime
    expires_at: datetime | None
    audiences: tuple[str, ...]
    secret: SecretRef | None
    ttl_granted: int | None
    warnings: tuple[str, ...]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Issuer:
    """Implements broker.contracts.IssuerPort."""

    def __init__(
        self,
        policy: Callable[[], Policy],
        clusters: Mapping[str, ClusterHandle],
        store: AuditStore,
        *,
        early_revocation: bool = True,
        legacy_wait_seconds: float = LEGACY_WAIT_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # a callable, not a Policy: SIGHUP swaps the policy and each issuance reads one snapshot
        self._policy = policy
        self._clusters = clusters
        self._store = store
        # whether a janitor runs that deletes bound Secrets at revoke-at (TTLs below the 600 s floor)
        self._early_revocation = early_revocation
        self._legacy_wait = legacy_wait_seconds
        self._clock = clock

    # -- IssuerPort -------------------------------------------------------------------------------------------
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
        async def probe_cluster(handle: ClusterHandle) -> str | None:
            try:
                await handle.client.discovery.ping()
            except BrokerError:
                return f"cluster {handle.name}"
            return None

        async def probe_store() -> str | None:
            try:
                await self._store.ping()
            except BrokerError:
                return "audit store"
            return None

        results = await asyncio.gather(probe_store(), *(probe_cluster(h) for h in self._clusters.values()))
        return [r for r in results if r]

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        started = time.perf_counter()
        try:
            issued = await self._issue(caller, req)
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
        role = self._policy().role(issued.role)
        metrics.token_issued(
            issued.role,
            issued.namespace,
            role.namespaces if role else (),
            role.mode if role else "token-request",
            time.perf_counter() - started,
        )
        return issued

    async def _issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        try:
            grant = await self._decide(self._policy(), caller, req)
            if grant.revoke_after_seconds is not None and not self._early_revocation:
                raise unprocessable(
                    f"ttl {grant.revoke_after_seconds}s is below the Kubernetes minimum of 600s; early "
                    "revocation needs the janitor, which is disabled ([janitor] enabled = false)",
                    kind=ErrorKind.TTL,
                )
        except BrokerError as exc:
            if exc.kind in DENIALS:
                await self._record_denial(caller, req, exc)
            raise
        cluster = self._clusters[grant.role.cluster]
        token_id = str(uuid.uuid4())
        # write-ahead: if this cannot be committed (503), nothing has been created yet
        await _audited(self._store.begin_issuance(self._pending(token_id, caller, req, grant)))
        # binding Secrets a failed issuance could not delete: the record then stays pending, and the janitor's
        # repair deletes them by their token-id label (a `failed` record is never looked at again)
        left_behind: list[SecretRef] = []
        try:
            if grant.role.mode == "legacy-secret":
                minted = await self._mint_legacy(cluster, caller, grant)
            else:
                minted = await self._mint_bound(cluster, caller, grant, token_id, left_behind)
        except BrokerError as exc:
            if not left_behind:
                await self._record_failure(token_id, exc.reason or exc.detail, exc.status)
            raise
        except BaseException as exc:
            if not left_behind:
                await self._record_failure(token_id, f"unexpected {type(exc).__name__}", 500)
            raise
        revoke_at = (
            minted.issued_at + timedelta(seconds=grant.revoke_after_seconds)
            if grant.revoke_after_seconds is not None
            else None
        )
        try:
            await _audited(
                self._store.complete_issuance(
                    token_id,
                    jti=minted.jti,
                    token_sha256=token_sha256(minted.token),
                    issued_at=minted.issued_at,
                    expires_at=minted.expires_at,
                    revoke_at=revoke_at,
                    bound_secret=_binding(minted.secret),
                    ttl_granted=minted.ttl_granted,
                )
            )
        except BaseException:
            # no completed record, no token: kill what can be killed before refusing (a Secret that cannot be
            # deleted now is found by repair: the record is still pending)
            if minted.secret is not None and grant.role.mode != "legacy-secret":
                await self._discard(cluster, minted.secret)
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
        return IssuedToken(
            token=minted.token,
            token_id=token_id,
            jti=minted.jti or "",
            issued_at=minted.issued_at,
            # a short revocable token dies at revoke-at, whatever its JWT exp says: that is what the caller
            # (and kubectl's credential cache) must plan for
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

    # -- audit records ----------------------------------------------------------------------------------------
    def _pending(self, token_id: str, caller: Caller, req: IssueRequest, grant: Grant) -> AuditRecord:
        role = grant.role
        return AuditRecord(
            id=token_id,
            time=self._clock(),
            event="pending",
            caller_user=caller.user,
            caller_method=caller.method,
            caller_groups=caller.groups,
            source_address=req.source_address,
            user_agent=req.user_agent,
            role=role.name,
            cluster=role.cluster,
            namespace=grant.namespace,
            service_account=role.service_account,
            audiences=grant.audiences,
            ttl_requested=req.ttl_seconds,
            ttl_granted=grant.ttl_seconds or None,
            context=dict(req.context),
            request_id=req.request_id,
        )

    async def _record_denial(self, caller: Caller, req: IssueRequest, exc: BrokerError) -> None:
        denial = AuditRecord(
            id=str(uuid.uuid4()),
            time=self._clock(),
            event="denied",
            caller_user=caller.user,
            caller_method=caller.method,
            caller_groups=caller.groups,
            source_address=req.source_address,
            user_agent=req.user_agent,
            role=req.role,
            namespace=req.namespace or "",
            audiences=req.audiences or (),
            ttl_requested=req.ttl_seconds,
            context=dict(req.context),
            reason=exc.reason or exc.detail,
            status=exc.status,
            request_id=req.request_id,
        )
        try:
            await _audited(self._store.record_denial(denial))
        except BrokerError:
            # the caller gets its denial either way; turning a 403 into a 503 would only confuse it
            log.error("could not record a denial in the audit store", extra={"caller": caller.user})

    async def _record_failure(self, token_id: str, reason: str, status: int) -> None:
        try:
            await _audited(self._store.fail_issuance(token_id, reason, status=status))
        except BrokerError:
            # the record stays pending: start-up repair resolves it (and deletes any Secret labelled with it)
            log.error("could not record a failed issuance", extra={"token_id": token_id})

    # -- steps ------------------------------------------------------------------------------------------------
    async def _decide(self, policy: Policy, caller: Caller, req: IssueRequest) -> Grant:
        match = policy.match(caller, req.role, req.namespace)
        labels: dict[str, str] | None = None
        if match.needs_namespace_labels:
            # only for a caller who may use the role here: a refused one costs the API server nothing
            assert match.role is not None and match.namespace is not None
            cluster = self._clusters[match.role.role.cluster]
            labels = await cluster.client.discovery.namespace_labels(match.namespace)
        audiences = list(req.audiences) if req.audiences is not None else None
        return policy.grant(match, req.ttl_seconds, audiences, labels)

    async def _ensure_account(self, cluster: ClusterHandle, grant: Grant) -> str:
        role = grant.role
        sa = await cluster.client.accounts.ensure(
            grant.namespace,
            role.service_account,
            labels={**MANAGED_BY, **role.service_account_labels},
            annotations=dict(role.service_account_annotations),
            create=role.create_service_account,
        )
        return sa.subject

    async def _mint_bound(
        self,
        cluster: ClusterHandle,
        caller: Caller,
        grant: Grant,
        token_id: str,
        left_behind: list[SecretRef],
    ) -> _Minted:
        role = grant.role
        subject = await self._ensure_account(cluster, grant)
        secret: SecretRef | None = None
        if role.revocable:
            expires = self._clock() + timedelta(seconds=grant.ttl_seconds)
            secret = await cluster.client.secrets.create_binding(
                grant.namespace,
                service_account=role.service_account,
                # the token-id label is how start-up repair finds this Secret for a pending record
                labels={**MANAGED_BY, ROLE_LABEL: role.name, TOKEN_ID_LABEL: token_id},
                annotations={EXPIRES_ANNOTATION: format_time(expires), CALLER_ANNOTATION: caller.user},
            )
        try:
            response = await cluster.client.tokens.request(
                grant.namespace,
                role.service_account,
                audiences=grant.audiences,
                expiration_seconds=grant.request_seconds,
                bound_secret=secret,
            )
            verified = await cluster.verifier.verify_bound(
                response.token,
                expected_audiences=grant.audiences,
                expected_subject=subject,
                expected_ttl_seconds=response.expiration_seconds,
                expected_secret=secret,
            )
        except BaseException:
            # nothing half-done: a token bound to this Secret must not outlive a failed issuance
            if secret is not None and not await self._discard(cluster, secret):
                left_behind.append(secret)
            raise
        return _Minted(
            token=response.token,
            jti=verified.jti,
            issued_at=verified.issued_at,
            expires_at=verified.expires_at,
            audiences=verified.audiences,
            secret=secret,
            ttl_granted=response.expiration_seconds,
            warnings=response.warnings,
        )

    async def _mint_legacy(self, cluster: ClusterHandle, caller: Caller, grant: Grant) -> _Minted:
        role = grant.role
        await self._ensure_account(cluster, grant)
        legacy = await cluster.client.legacy.token(
            grant.namespace,
            role.service_account,
            wait_timeout=self._legacy_wait,
            labels={**MANAGED_BY, ROLE_LABEL: role.name},
            annotations={CALLER_ANNOTATION: caller.user},
        )
        await cluster.verifier.verify_legacy(
            legacy.token, namespace=grant.namespace, service_account=role.service_account
        )
        return _Minted(
            token=legacy.token,
            jti=None,
            issued_at=self._clock(),
            expires_at=None,
            audiences=(),
            secret=SecretRef(grant.namespace, legacy.secret_name, legacy.secret_uid),
            ttl_granted=None,
            warnings=(
                "legacy service-account token: it does not expire; revoking it deletes "
                f"Secret {grant.namespace}/{legacy.secret_name}, which every holder of this token shares",
            ),
        )

    @staticmethod
    async def _discard(cluster: ClusterHandle, secret: SecretRef) -> bool:
        """Delete a binding Secret of an issuance that failed; False when it may still exist."""
        try:
            # shielded: a cancelled request must still clean up what it created
            await asyncio.shield(cluster.client.secrets.delete(secret.namespace, secret.name, uid=secret.uid))
        except (BrokerError, asyncio.CancelledError):
            log.warning(
                "could not delete a binding Secret after a failed issuance; start-up or janitor repair will",
                extra={"secret": f"{secret.namespace}/{secret.name}"},
            )
            return False
        return True


async def _audited(write: Awaitable[T]) -> T:
    """An audit store write, timed; a failed one counted (the caller still sees its 503)."""
    started = time.perf_counter()
    try:
        result = await write
    except BrokerError:
        metrics.audit_write_failed()
        raise
    metrics.audit_write(time.perf_counter() - started)
    return result


# the label each kind of refusal or failure is counted under
_DENIED: dict[ErrorKind, metrics.DenyKind] = {
    ErrorKind.UNKNOWN_ROLE: "unknown_role",
    ErrorKind.NO_GRANT: "no_grant",
    ErrorKind.NAMESPACE: "namespace",
    ErrorKind.NAMESPACE_SELECTOR: "namespace_selector",
    ErrorKind.TTL: "ttl",
    ErrorKind.AUDIENCE: "audience",
    ErrorKind.INVALID_REQUEST: "invalid_request",
}
_FAILED: dict[ErrorKind, metrics.FailKind] = {
    ErrorKind.UPSTREAM_REFUSED: "upstream_refused",
    ErrorKind.UPSTREAM_UNAVAILABLE: "upstream_unavailable",
    ErrorKind.VERIFICATION: "verification",
    ErrorKind.AUDIT_UNAVAILABLE: "audit",
}


def _binding(secret: SecretRef | None) -> SecretBinding | None:
    return SecretBinding(secret.namespace, secret.name, secret.uid) if secret is not None else None
