"""Fault injection: what a client of a real API server must survive (slow answers, 5xx, both kinds of 429,
connections reset). Mutable at runtime: tests flip fields on `sim.faults` between requests."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from .status import ApiError, too_many_requests

_ERROR_REASONS = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 502: "InternalError"}


class ConnectionReset(Exception):
    """Raised after the transport was aborted: nothing is to be written back."""


@dataclass
class Faults:
    # added before every affected request is handled (seconds)
    latency: float = 0.0
    # share of affected requests answered `error_code` (a Status), drawn from the seeded generator
    error_fraction: float = 0.0
    # the next N affected requests are answered `error_code` (deterministic)
    error_count: int = 0
    error_code: int = 500
    # the next N affected requests get 429 TooManyRequests as a Status with details.retryAfterSeconds
    throttle_status: int = 0
    # the next N affected requests get the plain-text 429 of API priority and fairness / max-in-flight
    throttle_plain: int = 0
    retry_after: int = 1
    # share of affected requests whose connection is reset without an answer
    reset_fraction: float = 0.0
    # the next N affected requests have their connection reset
    reset_count: int = 0
    # every affected request's connection is reset (the API server is "down")
    outage: bool = False
    # limit faults to paths starting with this prefix ("" = every path)
    path_prefix: str = ""
    seed: int | None = None
    # how many faults of each kind were injected ("latency", "error", "throttle_status", "throttle_plain", "reset")
    injected: Counter[str] = field(default_factory=Counter)
    # not for secrets: a seeded generator makes fault sequences reproducible
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self._rng = random.Random(seed)  # noqa: S311

    def clear(self) -> None:
        """Back to a healthy server (counters of injected faults are kept)."""
        self.latency = self.error_fraction = self.reset_fraction = 0.0
        self.error_count = self.throttle_status = self.throttle_plain = self.reset_count = 0
        self.error_code, self.retry_after = 500, 1
        self.outage = False
        self.path_prefix = ""

    def applies_to(self, path: str) -> bool:
        return path.startswith(self.path_prefix) if self.path_prefix else True

    def _draw(self, fraction: float) -> bool:
        return fraction > 0 and self._rng.random() < fraction

    def take_reset(self) -> bool:
        if self.outage:
            return True
        if self.reset_count > 0:
            self.reset_count -= 1
            return True
        return self._draw(self.reset_fraction)

    def take_error(self) -> bool:
        if self.error_count > 0:
            self.error_count -= 1
            return True
        return self._draw(self.error_fraction)


def _error(code: int) -> ApiError:
    reason = _ERROR_REASONS.get(code, "InternalError")
    if code == 500:
        return ApiError(
            500,
            reason,
            "Internal error occurred: injected fault",
            {"causes": [{"message": "injected fault"}]},
        )
    return ApiError(
        code, reason, f"the server is currently unable to handle the request (injected fault {code})"
    )


async def apply(faults: Faults, request: web.Request) -> web.StreamResponse | None:
    """Inject the faults that apply to this request: an answer to send instead, or None to carry on.

    Raises ConnectionReset after aborting the connection.
    """
    if not faults.applies_to(request.path):
        return None
    if faults.take_reset():
        faults.injected["reset"] += 1
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionReset
    if faults.latency > 0:
        faults.injected["latency"] += 1
        await asyncio.sleep(faults.latency)
    if faults.throttle_plain > 0:
        faults.throttle_plain -= 1
        faults.injected["throttle_plain"] += 1
        # apiserver/pkg/server/filters/maxinflight.go tooManyRequests: plain text, Retry-After
        return web.Response(
            status=429,
            text="Too many requests, please try again later.\n",
            content_type="text/plain",
            headers={"Retry-After": str(faults.retry_after)},
        )
    if faults.throttle_status > 0:
        faults.throttle_status -= 1
        faults.injected["throttle_status"] += 1
        raise too_many_requests(faults.retry_after)
    if faults.take_error():
        faults.injected["error"] += 1
        raise _error(faults.error_code)
    return None
