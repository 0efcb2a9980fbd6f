"""What operators (and every caller, for its own tokens) may do with the audit trail: list, revoke, introspect.

Visibility is decided here and nowhere else: a caller in one of the operator groups sees every record and may
revoke any token; any other caller sees only the records it made itself (same user name AND same
authentication method, so an API key named "alice" is not the certificate CN=alice) and may revoke only those.
A record another caller made is reported as absent (404, an empty page, `{"active": false}`), never as
forbidden: its existence is not the caller's business.

Implements broker.contracts.OperationsPort. No aiohttp here: the HTTP edge turns the answers into documents.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from broker import metrics
from broker._kits.jwt import InvalidToken, VerifiedClaims, decode_unverified, verify_any
from broker._kits.rfc3339 import format_time
from broker.audit.records import AuditRecord, utc_now
from broker.audit.store import MAX_PAGE, AuditFilter, AuditStore, InvalidCursor, Page
from broker.contracts import Introspection, RecordQuery
from broker.domain.errors import BrokerError, ErrorKind, bad_request
from broker.domain.identity import Caller
from broker.issuer import ClusterHandle, token_sha256

log = logging.getLogger(__name__)

Clusters = Mapping[str, ClusterHandle] | Callable[[], Mapping[str, ClusterHandle]]

# records per store query when streaming an export
EXPORT_PAGE = 500
# a non-operator's listing drops rows of a namesake who authenticated another way; refill a short page from
# at most this many further store pages (the cursor stays exact either way, a page may just be shorter)
_OWNER_REFILLS = 8
_INACTIVE = Introspection(active=False)


# -- errors ----------------------------------------------------------------------------------------------------


def not_found(detail: str = "no such token") -> BrokerError:
    return BrokerError(ErrorKind.NOT_FOUND, detail)


def conflict(kind: ErrorKind, detail: str) -> BrokerError:
    return BrokerError(kind, detail)


# -- visibility (pure) -----------------------------------------------------------------------------------------


def is_operator(caller: Caller, operator_groups: Sequence[str]) -> bool:
    return not set(caller.groups).isdisjoint(operator_groups)


def owns(caller: Caller, record: AuditRecord) -> bool:
    return record.caller_user == caller.user and record.caller_method == caller.method


def matches(record: AuditRecord, f: AuditFilter, now: datetime) -> bool:
    """The store's filter semantics, for a record found another way (by jti)."""
    for wanted, actual in (
        (f.caller, record.caller_user),
        (f.role, record.role),
        (f.namespace, record.namespace),
        (f.cluster, record.cluster),
        (f.event, record.event),
        (f.token_id, record.id),
    ):
        if wanted is not None and wanted != actual:
            return False
    if f.since is not None and record.time < f.since:
        return False
    if f.until is not None and record.time >= f.until:
        return False
    return f.active is None or f.active == record.live_at(now)


# -- the use cases -----------------------------------------------------------------------------------------------


PageFetch = Callable[[str | None, int], Awaitable[Page]]


class Operations:
    """Implements broker.contracts.OperationsPort over an audit store and the configured clusters.

    clusters: the connected clusters by name, or a callable returning them (looked up per call).
    operator_groups: read per call, so a SIGHUP reload of `[auth] operator_groups` applies at once.
    """

    def __init__(
        self,
        store: AuditStore,
        clusters: Clusters,
        operator_groups: Callable[[], Sequence[str]],
        *,
        clock: Callable[[], datetime] = utc_now,
        export_page: int = EXPORT_PAGE,
    ) -> None:
        self._store = store
        self._clusters: Callable[[], Mapping[str, ClusterHandle]] = (
            clusters if callable(clusters) else (lambda: clusters)
        )
        self._operator_groups = operator_groups
        self._clock = clock
        self._export_page = max(1, min(export_page, MAX_PAGE))

    def is_operator(self, caller: Caller) -> bool:
        return is_operator(caller, self._operator_groups())

    def _visible(self, caller: Caller, record: AuditRecord) -> bool:
        return self.is_operator(caller) or owns(caller, record)

    # -- listings ----------------------------------------------------------------------------------------------
    async def list_tokens(self, caller: Caller, query: RecordQuery) -> Page:
        return await self._tokens(caller, query, self._clock())

    async def list_events(self, caller: Caller, query: RecordQuery) -> Page:
        return await self._events(caller, query)

    def export_tokens(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        now = self._clock()  # one `active` cut-off for the whole export
        return self._export(lambda q: self._tokens(caller, q, now), query, max_records)

    def export_events(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        return self._export(lambda q: self._events(caller, q), query, max_records)

    async def _export(
        self, page_of: Callable[[RecordQuery], Awaitable[Page]], query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        sent, cursor = 0, query.cursor
        while sent < max_records:
            page = await page_of(
                replace(query, cursor=cursor, limit=min(self._export_page, max_records - sent))
            )
            for record in page.items:
                yield record
            sent += len(page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _tokens(self, caller: Caller, query: RecordQuery, now: datetime) -> Page:
        if query.jti is not None:
            record = await self._store.find_by_jti(query.jti)
            if record is None or not self._visible(caller, record) or not matches(record, query.filter, now):
                return Page((), None)
            return Page((record,), None)
        scoped = self._scope(caller, query.filter)
        if scoped is None:
            return Page((), None)

        async def fetch(cursor: str | None, limit: int) -> Page:
            return await self._store.query_issuances(scoped, cursor, limit, now=now)

        return await self._page(caller, fetch, query)

    async def _events(self, caller: Caller, query: RecordQuery) -> Page:
        f = query.filter
        if query.jti is not None:
            # from a Kubernetes audit line (credential-id JTI=…) to the history of that issuance
            record = await self._store.find_by_jti(query.jti)
            if record is None or not self._visible(caller, record):
                return Page((), None)
            if f.token_id not in (None, record.id):
                return Page((), None)
            f = replace(f, token_id=record.id)
        scoped = self._scope(caller, f)
        if scoped is None:
            return Page((), None)

        async def fetch(cursor: str | None, limit: int) -> Page:
            return await self._store.query_events(scoped, cursor, limit)

        return await self._page(caller, fetch, query)

    def _scope(self, caller: Caller, f: AuditFilter) -> AuditFilter | None:
        """The filter narrowed to what the caller may see; None when nothing can match."""
        if self.is_operator(caller):
            return f
        if f.caller not in (None, caller.user):
            return None
        return replace(f, caller=caller.user)

    async def _page(self, caller: Caller, fetch: PageFetch, query: RecordQuery) -> Page:
        try:
            if self.is_operator(caller):
                return await fetch(query.cursor, query.limit)
            # the store filters on the user name only: drop a namesake's rows authenticated another way
            items: list[AuditRecord] = []
            cursor = query.cursor
            for _ in range(_OWNER_REFILLS):
                page = await fetch(cursor, query.limit - len(items))
                items.extend(r for r in page.items if owns(caller, r))
                cursor = page.next_cursor
                if cursor is None or len(items) >= query.limit:
                    break
            return Page(tuple(items), cursor)
        except InvalidCursor:
            raise bad_request("the cursor is not valid for this listing; start again without it") from None

    # -- revocation --------------------------------------------------------------------------------------------
    async def revoke(self, caller: Caller, token_id: str, reason: str = "") -> AuditRecord | None:
        """Delete the token's bound Secret (the API server then rejects the token), then record it.

        Returns the `revoked` event, or None when the token was already dead (revoked, or expired and its Secret
        deleted by the janitor): DELETE is idempotent. 404 for a token the caller may not see; 409 for a token
        that cannot be revoked (no bound Secret) or is not issued; 502/503 when the API server did not delete
        the Secret, and then nothing is recorded: the token is still valid and the record must say so.
        """
        record = await self._store.get_issuance(token_id)
        if record is None or not self._visible(caller, record):
            raise not_found()
        if record.event in ("revoked", "expired"):
            return None
        if record.event == "pending":
            raise conflict(
                ErrorKind.ISSUANCE_IN_PROGRESS, "the token is still being issued; try again in a moment"
            )
        if record.event != "issued":
            raise conflict(ErrorKind.NOT_ISSUED, f"there is no token to revoke: the issuance {record.event}")
        secret = record.bound_secret
        if secret is None:
            ends = format_time(record.expires_at, "microseconds") if record.expires_at else "never"

            raise conflict(
                ErrorKind.NOT_REVOCABLE,
                f"token is not revocable: role {record.role!r} does not bind tokens to a Secret; "
                f"it expires at {ends}",
            )
        handle = self._clusters().get(record.cluster)
        if handle is None:
            raise conflict(
                ErrorKind.CLUSTER_UNKNOWN,
                f"the token was issued by cluster {record.cluster!r}, which this broker does not have "
                f"configured; delete Secret {secret.namespace}/{secret.name} there to revoke it",
            )
        # a uid precondition: a Secret re-created under the same name is someone else's and stays
        deleted = await handle.client.secrets.delete(secret.namespace, secret.name, uid=secret.uid or None)
        event = await self._store.mark_revoked(token_id, by=caller.user, at=self._clock(), reason=reason)
        if event is not None:
            # counted once per token: a concurrent DELETE of the same token finds it no longer issued (None)
            metrics.token_revoked(record.role)
        log.info(
            "token revoked",
            extra={
                "token_id": token_id,
                "jti": record.jti,
                "by": caller.user,
                "secret": f"{secret.namespace}/{secret.name}",
                "secret_was_present": deleted,
                "recorded": event is not None,
            },
        )
        return event

    # -- introspection -----------------------------------------------------------------------------------------
    async def introspect(self, caller: Caller, token: str) -> Introspection:
        """RFC 7662-like. Anything that is not a token the broker issued and the caller may see is
        `{"active": false}` and nothing more, whatever the reason: a probe learns nothing.

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
        if record is None or not self._visible(caller, record):
            return _INACTIVE
        if record.token_sha256 is not None and token_sha256(token) != record.token_sha256:
            return _INACTIVE  # same jti, other bytes: not the token that was issued
        now = self._clock()
        verified = await self._verify(token, record, claims.get("iss"))
        if verified is None:
            return Introspection(active=False, record=record, reason="the signature does not verify")
        if verified.expired(now):
            reason = "expired"
        elif record.event != "issued":
            reason = record.event
        elif not record.live_at(now):
            # a short revocable token past its revoke-at, which the janitor has not yet carried out
            reason = "expired"
        else:
            return Introspection(active=True, record=record, claims=verified.claims)
        return Introspection(active=False, record=record, claims=verified.claims, reason=reason)

    async def _verify(self, token: str, record: AuditRecord, iss: Any) -> VerifiedClaims | None:
        if not isinstance(iss, str):
            return None
        clusters = self._clusters()
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
