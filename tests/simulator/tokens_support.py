"""Helpers for the token tests: a simulator context without a server, and objects put straight into its store."""

from __future__ import annotations

import base64
import json
from typing import Any

from broker._kits.pki import CertificateAuthority
from kubesim.context import SimContext
from kubesim.kinds import NODES, PODS, SECRETS, SERVICEACCOUNTS
from kubesim.options import SimOptions
from kubesim.state import Obj, Store
from kubesim.tokens import KeyRing, new_signing_key

ISSUER = "https://kubesim.test:6443"
# RSA generation is slow; every context gets a fresh ring around the same key unless a test asks otherwise
_RSA_KEY = new_signing_key("RS256")
_CA = CertificateAuthority.generate("kubesim-test-ca")


def make_ctx(keys: KeyRing | None = None, **options: Any) -> SimContext:
    options.setdefault("issuer", ISSUER)
    return SimContext(
        options=SimOptions(**options),
        store=Store(),
        keys=keys or KeyRing([_RSA_KEY]),
        ca=_CA,
        server_url="https://127.0.0.1:6443",
    )


def create_sa(ctx: SimContext, name: str, namespace: str = "default") -> Obj:
    return ctx.store.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": name}})


def create_secret(ctx: SimContext, name: str, namespace: str = "default", **fields: Any) -> Obj:
    return ctx.store.create(SECRETS, namespace, {"metadata": {"name": name}, "type": "Opaque", **fields})


def create_token_secret(ctx: SimContext, name: str, sa: str, namespace: str = "default") -> Obj:
    return ctx.store.create(
        SECRETS,
        namespace,
        {
            "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa}},
            "type": "kubernetes.io/service-account-token",
        },
    )


def create_pod(ctx: SimContext, name: str, sa: str, namespace: str = "default", node: str = "") -> Obj:
    spec: dict[str, Any] = {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return ctx.store.create(PODS, namespace, {"metadata": {"name": name}, "spec": spec})


def create_node(ctx: SimContext, name: str) -> Obj:
    return ctx.store.create(NODES, None, {"metadata": {"name": name}})


def segments(token: str) -> tuple[bytes, bytes]:
    """The raw header and payload bytes of a compact JWS."""
    header, payload, _sig = token.split(".")
    return _unb64(header), _unb64(payload)


def claims_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(segments(token)[1])
    return result


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def secret_value(secret: Obj, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode("utf-8")
