"""Knobs of one simulated API server (the flags a kube-apiserver would take)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class SimOptions:
    # --service-account-issuer; empty means "https://<listen address>" once the port is known
    issuer: str = ""
    # --api-audiences; empty means [issuer]
    api_audiences: list[str] = field(default_factory=list)
    # --service-account-signing-key-file: the PEM private key (RSA or EC) that signs tokens; empty means a fresh
    # RSA key at every start
    signing_key_pem: bytes = b""
    # --service-account-max-token-expiration in seconds; 0 means no cap
    max_token_expiration: int = 0
    # how long the legacy token controller waits before filling a token Secret
    legacy_token_delay: float = 0.05
    # kube-controller-manager's --cluster-signing-duration in seconds: the longest certificate the CSR signer
    # issues (the real control plane of the tests runs with 24h; kube-controller-manager's own default is 1 year)
    cluster_signing_duration: int = 24 * 3600
    # how long after an approval the CSR signer writes status.certificate (clients poll or watch for it)
    csr_signing_delay: float = 0.05
    # --service-account-jwks-uri; empty means server_url + "/openid/v1/jwks" (the external address, as upstream)
    jwks_uri: str = ""
    # --service-account-extend-token-expiration: a pod-bound 3607 s token for the API audiences lives a year
    # (claims carry kubernetes.io.warnafter), as kube-apiserver does for projected volume tokens
    extend_token_expiration: bool = True
    # how long a successful bearer-token authentication is cached (kube-apiserver caches ~10 s, so revocation
    # lags); 0 = no cache, every request re-validates and revocation is immediate
    auth_cache_seconds: float = 0.0
    authorization: Literal["rbac", "always-allow"] = "rbac"
    # the `oidc-reviewer` ClusterRoleBinding the Kubernetes docs suggest: issuer discovery (the OIDC document and
    # the JWKS) for every user and anonymously; a fresh kube-apiserver grants it to service accounts only (False)
    public_issuer_discovery: bool = True
    # namespaces that exist at start, as in a fresh cluster
    initial_namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
    # version reported by /version
    git_version: str = "v1.32.0"
