"""The Kubernetes half of an issuance: the service account, (revocable roles) the Secret to bind the token to,
the TokenRequest (or a legacy Secret token), and the verification of what came back. Nothing half-done: a
token bound to a Secret this made must not outlive a failed issuance, so the Secret is rolled back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker._kits.rfc3339 import format_time
from broker.domain.identity import Caller
from broker.kube.cluster import Cluster
from broker.kube.labels import CALLER_ANNOTATION, EXPIRES_ANNOTATION, MANAGED_BY, ROLE_LABEL, TOKEN_ID_LABEL
from broker.kube.objects import SecretRef
from broker.policy import Grant

from .clusters import ClusterHandle

# A legacy Secret token is written asynchronously by the token controller; wait this long at most.
LEGACY_WAIT_SECONDS = 10.0

RollBack = Callable[[Cluster, SecretRef], Awaitable[bool]]


@dataclass(frozen=True)
class Minted:
    """A verified token not yet handed over."""

    token: str = field(repr=False)
    jti: str | None
    issued_at: datetime
    expires_at: datetime | None
    audiences: tuple[str, ...]
    secret: SecretRef | None
    ttl_granted: int | None
    warnings: tuple[str, ...]


class Minter:
    def __init__(
        self,
        roll_back: RollBack,
        *,
        legacy_wait_seconds: float = LEGACY_WAIT_SECONDS,
        clock: Callable[[], datetime],
    ) -> None:
        self._roll_back = roll_back
        self._legacy_wait = legacy_wait_seconds
        self._clock = clock

    async def mint(
        self,
        cluster: ClusterHandle,
        caller: Caller,
        grant: Grant,
        token_id: str,
        left_behind: list[SecretRef],
    ) -> Minted:
        """A verified token for the grant. A binding Secret that failed and could not be rolled back is added
        to `left_behind` (repair finds it by its token-id label)."""
        if grant.role.legacy:
            return await self._mint_legacy(cluster, caller, grant)
        return await self._mint_bound(cluster, caller, grant, token_id, left_behind)

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

    async def _bind(self, cluster: ClusterHandle, caller: Caller, grant: Grant, token_id: str) -> SecretRef:
        role = grant.role
        expires = self._clock() + timedelta(seconds=grant.ttl_seconds)
        return await cluster.client.secrets.create_binding(
            grant.namespace,
            service_account=role.service_account,
            # the token-id label is how start-up repair finds this Secret for a pending record
            labels={**MANAGED_BY, ROLE_LABEL: role.name, TOKEN_ID_LABEL: token_id},
            annotations={EXPIRES_ANNOTATION: format_time(expires), CALLER_ANNOTATION: caller.user},
        )

    async def _mint_bound(
        self,
        cluster: ClusterHandle,
        caller: Caller,
        grant: Grant,
        token_id: str,
        left_behind: list[SecretRef],
    ) -> Minted:
        role = grant.role
        subject = await self._ensure_account(cluster, grant)
        secret = await self._bind(cluster, caller, grant, token_id) if role.revocable else None
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
            if secret is not None and not await self._roll_back(cluster.client, secret):
                left_behind.append(secret)
            raise
        return Minted(
            token=response.token,
            jti=verified.jti,
            issued_at=verified.issued_at,
            expires_at=verified.expires_at,
            audiences=verified.audiences,
            secret=secret,
            ttl_granted=response.expiration_seconds,
            warnings=response.warnings,
        )

    async def _mint_legacy(self, cluster: ClusterHandle, caller: Caller, grant: Grant) -> Minted:
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
        return Minted(
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
