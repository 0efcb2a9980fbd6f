"""The issuance use case: the only place that orders the steps of handing out a token.

policy → ensure the service account → (revocable) a Secret to bind to → TokenRequest → verify → hand over.
Every failure after the binding Secret exists deletes it again, so a refused or failed issuance leaves no
object behind that could make a token valid.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broker.contracts import IssuedToken, IssueRequest, RoleInfo
from broker.errors import BrokerError, unprocessable
from broker.identity import Caller
from broker.kube.client import ClusterClient
from broker.kube.objects import SecretRef
from broker.kube.verify import ClusterTokenVerifier
from broker.policy import Grant, Policy

log = logging.getLogger(__name__)

MANAGED_BY = {"app.kubernetes.io/managed-by": "kube-token-broker"}
ROLE_LABEL = "token-broker.io/role"
TOKEN_ID_LABEL = "token-broker.io/token-id"
EXPIRES_ANNOTATION = "token-broker.io/expires-at"
CALLER_ANNOTATION = "token-broker.io/caller"

# A legacy Secret token is written asynchronously by the token controller; wait this long at most.
LEGACY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class ClusterHandle:
    """One configured cluster as the issuer uses it."""

    name: str
    client: ClusterClient
    verifier: ClusterTokenVerifier
    # what a rendered kubeconfig points at (config override, else the broker's own view of the cluster)
    server_url: str
    ca_pem: bytes | None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Issuer:
    """Implements broker.contracts.IssuerPort."""

    def __init__(
        self,
        policy: Callable[[], Policy],
        clusters: Mapping[str, ClusterHandle],
        *,
        legacy_wait_seconds: float = LEGACY_WAIT_SECONDS,
    ) -> None:
        # a callable, not a Policy: SIGHUP swaps the policy and each issuance reads one snapshot
        self._policy = policy
        self._clusters = clusters
        self._legacy_wait = legacy_wait_seconds

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
        async def probe(handle: ClusterHandle) -> str | None:
            try:
                await handle.client.ping()
            except BrokerError:
                return f"cluster {handle.name}"
            return None

        results = await asyncio.gather(*(probe(h) for h in self._clusters.values()))
        return [r for r in results if r]

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        policy = self._policy()
        grant = await self._decide(policy, caller, req)
        cluster = self._clusters[grant.role.cluster_name]
        if grant.role.mode == "legacy-secret":
            return await self._issue_legacy(cluster, caller, grant)
        if grant.revoke_after_seconds is not None:
            # Honouring a TTL below Kubernetes' 600 s floor needs the janitor to delete the bound Secret on
            # time; until it exists, refusing is the honest answer (a 10-minute token is not a 2-minute one).
            raise unprocessable(
                f"ttl {grant.revoke_after_seconds}s is below the Kubernetes minimum of 600s; "
                "early revocation for short tokens is not available yet"
            )
        return await self._issue_bound(cluster, caller, grant)

    # -- steps ------------------------------------------------------------------------------------------------
    async def _decide(self, policy: Policy, caller: Caller, req: IssueRequest) -> Grant:
        labels: dict[str, str] | None = None
        if policy.needs_namespace_labels(req.role):
            role = policy.role(req.role)
            namespace = policy.resolve_namespace(req.role, req.namespace)
            if role is not None and namespace is not None:
                # decide() first checks the role and the caller's grants, so these labels only change
                # the answer for a caller who may use the role at all
                labels = await self._clusters[role.cluster_name].client.namespace_labels(namespace)
        return policy.decide(
            caller,
            req.role,
            req.namespace,
            req.ttl_seconds,
            list(req.audiences) if req.audiences is not None else None,
            labels,
        )

    async def _ensure_account(self, cluster: ClusterHandle, grant: Grant) -> str:
        role = grant.role
        sa = await cluster.client.ensure_service_account(
            grant.namespace,
            role.service_account,
            labels={**MANAGED_BY, **role.service_account_labels},
            annotations=dict(role.service_account_annotations),
            create=role.create_service_account,
        )
        return sa.subject

    async def _issue_bound(self, cluster: ClusterHandle, caller: Caller, grant: Grant) -> IssuedToken:
        role = grant.role
        token_id = str(uuid.uuid4())
        subject = await self._ensure_account(cluster, grant)
        secret: SecretRef | None = None
        if role.revocable:
            expires = datetime.now(UTC) + timedelta(seconds=grant.ttl_seconds)
            secret = await cluster.client.create_binding_secret(
                grant.namespace,
                service_account=role.service_account,
                labels={**MANAGED_BY, ROLE_LABEL: role.name, TOKEN_ID_LABEL: token_id},
                annotations={EXPIRES_ANNOTATION: _iso(expires), CALLER_ANNOTATION: caller.user},
            )
        try:
            response = await cluster.client.request_token(
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
            if secret is not None:
                await self._discard(cluster, secret)
            raise
        log.info(
            "issued token",
            extra={
                "token_id": token_id,
                "jti": verified.jti,
                "role": role.name,
                "namespace": grant.namespace,
                "caller": caller.user,
                "grant": grant.grant_name,
            },
        )
        return IssuedToken(
            token=response.token,
            token_id=token_id,
            jti=verified.jti,
            issued_at=verified.issued_at,
            expires_at=verified.expires_at,
            namespace=grant.namespace,
            service_account=role.service_account,
            audiences=verified.audiences,
            role=role.name,
            cluster=cluster.name,
            server_url=cluster.server_url,
            ca_pem=cluster.ca_pem,
            warnings=response.warnings,
        )

    async def _issue_legacy(self, cluster: ClusterHandle, caller: Caller, grant: Grant) -> IssuedToken:
        role = grant.role
        await self._ensure_account(cluster, grant)
        legacy = await cluster.client.legacy_secret_token(
            grant.namespace,
            role.service_account,
            wait_timeout=self._legacy_wait,
            labels={**MANAGED_BY, ROLE_LABEL: role.name},
            annotations={CALLER_ANNOTATION: caller.user},
        )
        await cluster.verifier.verify_legacy(
            legacy.token, namespace=grant.namespace, service_account=role.service_account
        )
        log.info(
            "issued legacy token",
            extra={"role": role.name, "namespace": grant.namespace, "caller": caller.user},
        )
        return IssuedToken(
            token=legacy.token,
            token_id=legacy.secret_uid,
            jti="",
            issued_at=datetime.now(UTC),
            expires_at=None,
            namespace=grant.namespace,
            service_account=role.service_account,
            audiences=(),
            role=role.name,
            cluster=cluster.name,
            server_url=cluster.server_url,
            ca_pem=cluster.ca_pem,
            warnings=(
                "legacy service-account token: it does not expire; revoke it by deleting "
                f"Secret {grant.namespace}/{legacy.secret_name}",
            ),
        )

    @staticmethod
    async def _discard(cluster: ClusterHandle, secret: SecretRef) -> None:
        try:
            # shielded: a cancelled request must still clean up what it created
            await asyncio.shield(cluster.client.delete_secret(secret.namespace, secret.name, uid=secret.uid))
        except (BrokerError, asyncio.CancelledError):
            log.warning(
                "could not delete binding Secret after a failed issuance; delete it by hand",
                extra={"secret": f"{secret.namespace}/{secret.name}"},
            )
