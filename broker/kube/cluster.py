"""One configured cluster: its API and the resources the broker uses on it, over one transport."""

from __future__ import annotations

from pathlib import Path

from .api import KubeApi, Transport
from .discovery import Discovery
from .leases import Leases
from .legacy import LegacyTokens
from .retry import RetryPolicy
from .reviews import Reviews
from .secrets import Secrets
from .serviceaccounts import ServiceAccounts
from .tokens import Tokens
from .transport import HttpTransport, InClusterFiles, load_connection


class Cluster:
    """Everyone takes what they need of it: the issuer accounts, secrets and tokens; the janitor secrets and
    accounts; the elector leases; the verifier discovery; the TokenReview callers reviews."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.accounts = ServiceAccounts(api)
        self.secrets = Secrets(api)
        self.legacy = LegacyTokens(api, self.secrets)
        self.tokens = Tokens(api, self.accounts)
        self.leases = Leases(api)
        self.discovery = Discovery(api)
        self.reviews = Reviews(api)

    @classmethod
    def over(
        cls,
        name: str,
        transport: Transport,
        *,
        server_url: str,
        retry: RetryPolicy | None = None,
        ca_pem: bytes | None = None,
        proxy: str | None = None,
    ) -> Cluster:
        return cls(KubeApi(name, transport, server_url=server_url, retry=retry, ca_pem=ca_pem, proxy=proxy))

    @classmethod
    async def connect(
        cls,
        name: str,
        *,
        kubeconfig: Path | None,
        context: str | None,
        in_cluster: bool,
        request_timeout: float,
        retry: RetryPolicy | None = None,
        in_cluster_files: InClusterFiles | None = None,
    ) -> Cluster:
        """Load the kubeconfig (client cert, token, exec plugin) or the in-cluster files; no network call.

        Raises transport.ClusterConfigError when the configuration cannot be used.
        """
        connection = await load_connection(
            kubeconfig=kubeconfig, context=context, in_cluster=in_cluster, in_cluster_files=in_cluster_files
        )
        transport = HttpTransport(connection, request_timeout=request_timeout)
        return cls.over(
            name,
            transport,
            server_url=connection.server_url,
            retry=retry,
            ca_pem=connection.ca_pem,
            proxy=connection.proxy,
        )

    @property
    def name(self) -> str:
        return self.api.name

    @property
    def server_url(self) -> str:
        return self.api.server_url

    @property
    def ca_pem(self) -> bytes | None:
        return self.api.ca_pem

    @property
    def proxy(self) -> str | None:
        return self.api.proxy

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
