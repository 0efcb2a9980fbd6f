"""Batches POSTed to an HTTPS endpoint as one JSON array; any 2xx acknowledges the whole batch.

Retries with tenacity: exponential backoff with jitter between attempts, honouring a Retry-After (up to
backoff_max_seconds), at most max_attempts per batch; then the delivery loop backs off and tries the same
events again — a batch is never skipped. Redirects are not followed (a POST of the trail goes where it was
configured to go, nowhere else). The bearer token is read once and never logged.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential, wait_random

from broker._kits.tls import client_ssl_context
from broker.audit.chain import ChainedEvent

from .base import FailureKind, OnRetry, SinkError
from .formats import EventFormat, encode_batch
from .targets import WebhookTarget

# the receiver's answer is only looked at for its status: read at most this much of it
_MAX_ANSWER = 4096


class _RetryAfterOr(wait_base):
    """The receiver's Retry-After when it sent one (capped), else the jittered exponential backoff."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self._fallback = fallback
        self._cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, SinkError) and error.retry_after is not None:
            return min(error.retry_after, self._cap)
        return float(self._fallback(retry_state))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the exponential backoff will do


class WebhookSink:
    def __init__(
        self,
        target: WebhookTarget,
        fmt: EventFormat,
        *,
        on_retry: OnRetry = lambda _kind: None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = target.name
        self._target = target
        self._format = fmt
        self._on_retry = on_retry
        self._ssl = ssl_context or client_ssl_context(
            cafile=target.ca_file, certfile=target.client_cert, keyfile=target.client_key
        )
        self._headers = {"Content-Type": fmt.batch_content_type, **target.headers}
        if target.bearer_token_file is not None:
            self._headers["Authorization"] = "Bearer " + read_token(target.bearer_token_file)
        self._session: aiohttp.ClientSession | None = None
        self._acknowledged = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env: HTTPS_PROXY / NO_PROXY are honoured, as for every other outgoing connection
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._target.timeout_seconds),
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=2),
                trust_env=True,
            )
        return self._session

    async def _post(self, body: bytes) -> None:
        try:
            async with self._client().post(
                self._target.url, data=body, headers=self._headers, allow_redirects=False
            ) as resp:
                await resp.content.read(_MAX_ANSWER)
                if 200 <= resp.status < 300:
                    return
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                kind = (
                    FailureKind.SERVER if resp.status >= 500 or resp.status == 429 else FailureKind.REJECTED
                )
                raise SinkError(kind, f"{self._target.url} answered {resp.status}", retry_after=retry_after)
        except aiohttp.ClientConnectorCertificateError as err:
            raise SinkError(FailureKind.TLS, f"{self._target.url}: {err.certificate_error}") from None
        except aiohttp.ClientSSLError as err:
            raise SinkError(FailureKind.TLS, f"{self._target.url}: {err}") from None
        except aiohttp.ClientConnectorError as err:
            raise SinkError(FailureKind.CONNECT, f"{self._target.url}: {err.strerror or err}") from None
        except TimeoutError:
            raise SinkError(
                FailureKind.TIMEOUT,
                f"{self._target.url}: no answer within {self._target.timeout_seconds:g}s",
            ) from None
        except (aiohttp.ClientError, OSError) as err:
            raise SinkError(FailureKind.CLOSED, f"{self._target.url}: {type(err).__name__}: {err}") from None

    def _count_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, SinkError):
            self._on_retry(error.kind)

    async def send(self, events: Sequence[ChainedEvent]) -> int:
        if not events:
            return self._acknowledged
        body = encode_batch(self._format, events)
        s = self._target
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=_RetryAfterOr(
                wait_exponential(multiplier=s.backoff_initial_seconds, max=s.backoff_max_seconds)
                + wait_random(0, s.backoff_initial_seconds),
                s.backoff_max_seconds,
            ),
            retry=retry_if_exception_type(SinkError),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._post(body)
        self._acknowledged = events[-1].seq
        return self._acknowledged

    async def acknowledged(self) -> int:
        return self._acknowledged

    async def reset(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def close(self) -> None:
        await self.reset()


def read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path}: the bearer token file is empty")
    return token
