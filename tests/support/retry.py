"""The one retry policy for broker clients of a simulator in tests: fast backoff, still several attempts."""

from __future__ import annotations

from broker.kube import RetryPolicy

FAST_RETRY = RetryPolicy(
    attempts=3, max_elapsed=5.0, base_backoff=0.01, max_backoff=0.05, max_retry_after=2.0
)
