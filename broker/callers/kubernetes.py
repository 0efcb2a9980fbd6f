"""In-cluster callers: a bearer service-account token, checked by the API server with a TokenReview.

The review names the audiences the broker expects, so a token minted for the API server (or for anyone else)
is refused: an in-cluster agent asks for one with `audience: token-broker` (a projected volume, or
`kubectl create token --audience`). The API server also checks what the token is bound to, so a token whose
Pod or Secret is gone is refused.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from broker._kits.singleflight import SingleFlight
from broker.callers.base import CallerRequest
from broker.callers.bearer import bearer_jwt
from broker.domain.errors import ErrorKind, unauthenticated, unavailable, upstream_refused
from broker.domain.identity import Caller

_MAX_ERROR = 300


class TokenReviewer(Protocol):
    """What this authenticator needs of a cluster (kube.Reviews has it): one TokenReview, errors as
    BrokerError; the answer as the API server gave it."""

    async def review(self, token: str, audiences: Sequence[str]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class _Cached:
    caller: Caller
    expires_at: float


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


class TokenReviewAuthenticator:
    """`Authorization: Bearer <service-account JWT>` → Caller(user=system:serviceaccount:NS:NAME, its groups,
    method="kubernetes", claims=the review's `extra`).

    Successful reviews are reused for `cache_seconds`, keyed by the token's SHA-256 (never the token), in at
    most `cache_size` entries, like kube-apiserver's cached token authenticator (10 s for successes, failures
    not cached): revoking a token takes effect here within that time. Concurrent reviews of one token
    collapse into one request.
    """

    method = "kubernetes"

    def __init__(
        self,
        reviewer: Callable[[], TokenReviewer | None],
        *,
        audiences: Sequence[str],
        cluster: str = "",
        cache_seconds: float = 10.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """reviewer: the cluster client, looked up per review (None while the broker is not connected yet)."""
        if not audiences:
            raise ValueError("a TokenReview authenticator needs at least one audience")
        self._reviewer = reviewer
        self._audiences = tuple(audiences)
        self._cluster = cluster
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._flight: SingleFlight[bytes, Caller] = SingleFlight()
        self.reviews = 0

    async def authenticate(self, request: CallerRequest) -> Caller | None:
        token = bearer_jwt(request)
        if token is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if self._clock() < cached.expires_at:
                self._cache.move_to_end(digest)
                return cached.caller
            del self._cache[digest]
        return await self._flight.do(digest, lambda: self._review(token, digest))

    async def _review(self, token: str, digest: bytes) -> Caller:
        where = f"cluster {self._cluster}" if self._cluster else "the cluster"
        client = self._reviewer()
        if client is None:
            raise unavailable(f"{where} that reviews service-account tokens is not connected yet")
        self.reviews += 1
        answer = await client.review(token, self._audiences)
        # the answer echoes the token in spec: read status only, and never log the answer
        status = answer.get("status")
        if not isinstance(status, dict):
            raise upstream_refused(f"the TokenReview answer of {where} has no status")
        self._check_accepted(status, where)
        caller = self._caller_of(status.get("user"), where)
        self._remember(digest, caller)
        return caller

    def _check_accepted(self, status: dict[str, Any], where: str) -> None:
        if status.get("authenticated") is not True:
            error = str(status.get("error") or "not authenticated")[:_MAX_ERROR]
            raise unauthenticated(
                ErrorKind.CREDENTIAL_REVOKED,
                "bearer token was not accepted by the cluster",
                reason=f"TokenReview on {where}: {error}",
            )
        # authentication/v1 TokenReviewStatus.audiences: a client that set spec.audiences must check that a
        # compatible audience came back (an authenticator that ignores audiences returns the API server's)
        confirmed = _strings(status.get("audiences")) or []
        if not set(confirmed) & set(self._audiences):
            raise unauthenticated(
                ErrorKind.BAD_AUDIENCE,
                "bearer token is not meant for this broker (audience)",
                reason=f"TokenReview on {where} confirmed audiences {confirmed!r}, not {list(self._audiences)!r}",
            )

    def _caller_of(self, user: object, where: str) -> Caller:
        username = user.get("username") if isinstance(user, dict) else None
        if not isinstance(user, dict) or not isinstance(username, str) or not username:
            raise upstream_refused(f"the TokenReview answer of {where} names no user")
        groups = _strings(user.get("groups", [])) or []
        extra_raw = user.get("extra")
        extra = {
            str(k): list(v)
            for k, v in (extra_raw.items() if isinstance(extra_raw, dict) else ())
            if _strings(v) is not None
        }
        return Caller(user=username, groups=tuple(groups), method=self.method, claims=MappingProxyType(extra))

    def _remember(self, digest: bytes, caller: Caller) -> None:
        if self._cache_seconds <= 0:
            return
        self._cache[digest] = _Cached(caller, self._clock() + self._cache_seconds)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
