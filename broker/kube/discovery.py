"""What a cluster says about itself: is it up, who issues its service-account tokens and with which keys, and
the labels of a namespace (for roles with a namespace_selector)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from broker._kits.jwks import parse_max_age
from broker.domain.errors import upstream_refused

from .api import KubeApi
from .errors import KubeApiError
from .objects import check_namespace, meta, namespace_missing

# the API server publishes its signing keys here whatever jwks_uri the discovery document names
JWKS_PATH = "/openid/v1/jwks"
JWKS_ACCEPT = "application/jwk-set+json, application/json"


class Discovery:
    def __init__(self, api: KubeApi) -> None:
        self._api = api

    async def ping(self) -> None:
        """One GET /version, no retries (readiness wants a quick answer). Failure → BrokerError (503/502)."""
        await self._api.call("GET", "/version", action="reach the Kubernetes API server", retry=False)

    async def discover_issuer(self) -> tuple[str, str]:
        """(issuer, jwks_uri) from /.well-known/openid-configuration."""
        action = "discover the service-account token issuer"
        body = (await self._api.call("GET", "/.well-known/openid-configuration", action=action)).body
        issuer, jwks_uri = body.get("issuer"), body.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not jwks_uri:
            raise upstream_refused(f"cannot {action}: the discovery document lacks issuer or jwks_uri")
        return issuer, jwks_uri

    def _jwks_path(self, uri: str) -> str:
        """A server path for `uri`. A jwks_uri on another origin (an external issuer) becomes the API server's
        own /openid/v1/jwks, which serves the same keys: the broker's credentials never leave for another host."""
        if uri.startswith("/"):
            return uri
        target, server = urlsplit(uri), urlsplit(self._api.server_url)
        if (target.scheme, target.netloc) == (server.scheme, server.netloc):
            base = server.path.rstrip("/")
            path = target.path
            if base and path.startswith(base):
                path = path[len(base) :]
            return (path or JWKS_PATH) + (f"?{target.query}" if target.query else "")
        return JWKS_PATH

    async def fetch_jwks(self, uri: str = JWKS_PATH) -> tuple[dict[str, Any], float | None]:
        """The JSON Web Key Set, through the same authenticated session, and the Cache-Control max-age it came
        with (None when the server sent none)."""
        action = "fetch the cluster's token signing keys"
        # the API server serves the key set as application/jwk-set+json only (406 to application/json)
        resp = await self._api.call("GET", self._jwks_path(uri), action=action, accept=JWKS_ACCEPT)
        if not isinstance(resp.body.get("keys"), list):
            raise upstream_refused(f"cannot {action}: the answer is not a JSON Web Key Set")
        return resp.body, parse_max_age(resp.headers.get("Cache-Control"))

    async def namespace_labels(self, namespace: str) -> dict[str, str]:
        """Labels of a namespace (for namespace selectors). Missing namespace → 422."""
        path = f"/api/v1/namespaces/{check_namespace(namespace)}"
        try:
            resp = await self._api.call("GET", path, action=f'read namespace "{namespace}"', expect=(404,))
        except KubeApiError:
            raise namespace_missing(namespace) from None
        labels = meta(resp.body).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
