"""Test-only signing keys and tokens shaped like kube-apiserver's (for the verifier's pure tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class Key:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    alg: str

    @property
    def kid(self) -> str:
        # KUBE-SEMANTICS: base64url (no padding) of SHA-256 over the DER SubjectPublicKeyInfo
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        data: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            data = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            data = json.loads(ECAlgorithm.to_jwk(public))
        data.update({"use": "sig", "kid": self.kid})
        if with_alg:
            data["alg"] = self.alg
        return data

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def rsa_key(alg: str = "RS256") -> Key:
    return Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


def ec_key(alg: str = "ES256") -> Key:
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return Key(ec.generate_private_key(curve), alg)


def bound_claims(
    namespace: str = "ci",
    name: str = "deployer",
    *,
    ttl: int = 600,
    secret: tuple[str, str] | None = ("token-broker-abc", "secret-uid"),
    audiences: list[str] | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    now = int(time.time()) if now is None else now
    kube: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": "sa-uid"}}
    if secret is not None:
        kube["secret"] = {"name": secret[0], "uid": secret[1]}
    return {
        "aud": audiences if audiences is not None else [ISSUER],
        "exp": now + ttl,
        "iat": now,
        "iss": ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": kube,
        "nbf": now,
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }


class StaticSource:
    """A TokenSource serving a fixed discovery document and a JWKS that a test can change."""

    def __init__(self, *keys: Key, max_age: float | None = 3600.0, with_alg: bool = True) -> None:
        self.jwks: dict[str, Any] = {"keys": [k.jwk(with_alg=with_alg) for k in keys]}
        self.max_age = max_age
        self.fetches = 0
        self.fail: Exception | None = None

    async def discover_issuer(self) -> tuple[str, str]:
        return ISSUER, ISSUER + "/openid/v1/jwks"

    async def fetch_jwks(self, uri: str) -> tuple[dict[str, Any], float | None]:
        self.fetches += 1
        if self.fail is not None:
            raise self.fail
        return json.loads(json.dumps(self.jwks)), self.max_age
