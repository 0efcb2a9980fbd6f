"""TokenReview: the API server says whose a bearer token is (the in-cluster callers' authentication)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .api import KubeApi

TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


class Reviews:
    def __init__(self, api: KubeApi) -> None:
        self._api = api

    async def review(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        """The review's answer (it echoes the token in spec: read its status only, and never log it). One POST,
        not retried; failures → BrokerError."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": list(audiences)},
        }
        return await self._api.post_json(TOKEN_REVIEWS_PATH, body)
