"""What is this token? RFC 7662-like introspection of the tokens the broker issued."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from broker._kits.jwt import InvalidToken, VerifiedClaims, decode_unverified, verify_any
from broker.audit.records import utc_now
from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.domain.records import AuditRecord, token_sha256

from .access import Visibility
from .clusters import Handles, lookup_handles
from .ports import Introspection

log = logging.getLogger(__name__)

_INACTIVE = Introspection(active=False)


class Introspector:
    """Implements IntrospectionPort over the audit store and the configured clusters' keys."""

    def __init__(
        self,
        store: AuditStore,
        clusters: Handles,
        visibility: Visibility,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._clusters = clusters
        self._visibility = visibility
        self._clock = clock

    async def introspect(self, caller: Caller, token: str) -> Introspection:
        """Anything that is not a token the broker issued and the caller may see is `{"active": false}` and
        nothing more, whatever the reason: a probe learns nothing.

        The record is found by jti before any key is fetched, so a stream of made-up tokens costs the API
        server nothing. Active = signature verifies with the issuing cluster's keys, not past exp, and the
        record says issued and live (not revoked, expired, nor past a short token's revoke-at).
        """
        try:
            claims = decode_unverified(token).claims
        except ValueError:
            return _INACTIVE
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            # legacy Secret tokens carry no jti: there is no record to find them by
            return _INACTIVE
        record = await self._store.find_by_jti(jti)
        if record is None or not self._visibility.sees(caller, record):
            return _INACTIVE
        if record.token_sha256 is not None and token_sha256(token) != record.token_sha256:
            return _INACTIVE  # same jti, other bytes: not the token that was issued
        verified = await self._verify(token, record, claims.get("iss"))
        if verified is None:
            return Introspection(active=False, record=record, reason="the signature does not verify")
        reason = _why_inactive(record, verified, self._clock())
        if reason is None:
            return Introspection(active=True, record=record, claims=verified.claims)
        return Introspection(active=False, record=record, claims=verified.claims, reason=reason)

    async def _verify(self, token: str, record: AuditRecord, iss: Any) -> VerifiedClaims | None:
        if not isinstance(iss, str):
            return None
        clusters = lookup_handles(self._clusters)
        # the issuing cluster first; several clusters may share an issuer URL (the in-cluster default)
        ordered = [clusters[record.cluster]] if record.cluster in clusters else []
        ordered += [h for name, h in clusters.items() if name != record.cluster]
        for handle in ordered:
            try:
                if await handle.verifier.issuer() != iss:
                    continue
                return await verify_any(token, handle.verifier.jwks, issuer=iss)
            except BrokerError:
                # the issuing cluster's keys unreachable: 503, the caller may ask again; another cluster's
                # outage must not turn a plain "does not verify" into an error
                if handle.name == record.cluster:
                    raise
            except InvalidToken as exc:
                log.info(
                    "introspected token does not verify",
                    extra={"token_id": record.id, "cluster": handle.name, "why": str(exc)},
                )
        return None


def _why_inactive(record: AuditRecord, verified: VerifiedClaims, now: datetime) -> str | None:
    if verified.expired(now):
        return "expired"
    if record.event != "issued":
        return record.event
    if not record.live_at(now):
        # a short revocable token past its revoke-at, which the janitor has not yet carried out
        return "expired"
    return None
