"""Service-account token signing keys, key ids, JWKS, and signing/verification of compact JWS tokens.

Modelled on pkg/serviceaccount/jwt.go and openidmetadata.go: the key id is derived from the public key, the
JWS header is exactly {"alg","kid"} (go-jose adds no "typ"), claims are serialised with sorted keys (go-jose
normalises them through a map), RSA keys sign RS256 and EC keys ES256/384/512.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# algorithm → (curve, hash, coordinate size in bytes); RSA is RS256 only, as in Kubernetes
_EC_ALGORITHMS: dict[str, tuple[ec.EllipticCurve, hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1(), hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1(), hashes.SHA384(), 48),
    "ES512": (ec.SECP521R1(), hashes.SHA512(), 66),
}
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_JWK_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
SUPPORTED_ALGORITHMS = ("RS256", *_EC_ALGORITHMS)


class InvalidToken(Exception):
    """A token that is not a well-formed JWS, or whose signature no key in the ring verifies.

    The message is what kube-apiserver would report in a TokenReview's status.error."""


# -- encoding helpers ---------------------------------------------------------------------------------------
def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 §2); padding or foreign characters are rejected."""
    if "=" in text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("illegal base64url data")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def go_json(value: Any) -> bytes:
    """JSON the way Go's encoding/json writes a map: sorted keys, no spaces, UTF-8, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


# -- keys -------------------------------------------------------------------------------------------------------
def key_id(public_key: PublicKey) -> str:
    """keyIDFromPublicKey: base64url (no padding) of SHA-256 over the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url_encode(hashlib.sha256(der).digest())


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """algorithmFromPublicKey: RSA → RS256, EC → ES256/384/512 by curve."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    try:
        return _CURVE_ALGORITHMS[key.curve.name]
    except KeyError:
        raise ValueError("unknown private key curve, must be 256, 384, or 521") from None


def new_signing_key(algorithm: str = "RS256") -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm in _EC_ALGORITHMS:
        return ec.generate_private_key(_EC_ALGORITHMS[algorithm][0])
    raise ValueError(
        f"unsupported signing algorithm {algorithm!r}; supported: {', '.join(SUPPORTED_ALGORITHMS)}"
    )


def public_jwk(public_key: PublicKey, kid: str | None = None) -> dict[str, Any]:
    """One JWKS entry, field order as go-jose marshals it: use, kty, kid, crv, alg, x, y, n, e."""
    alg = algorithm_for(public_key)
    kid = kid or key_id(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": kid,
            "alg": alg,
            "n": b64url_encode(_int_bytes(numbers.n)),
            "e": b64url_encode(_int_bytes(numbers.e)),
        }
    size = _EC_ALGORITHMS[alg][2]
    point = public_key.public_numbers()
    return {
        "use": "sig",
        "kty": "EC",
        "kid": kid,
        "crv": _JWK_CURVES[alg],
        "alg": alg,
        "x": b64url_encode(_int_bytes(point.x, size)),
        "y": b64url_encode(_int_bytes(point.y, size)),
    }


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def of(cls, private_key: PrivateKey) -> SigningKey:
        return cls(key_id(private_key.public_key()), algorithm_for(private_key), private_key)

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        _curve, digest, size = _EC_ALGORITHMS[self.algorithm]
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(digest)))
        return _int_bytes(r, size) + _int_bytes(s, size)  # JWS wants raw R||S, not DER (RFC 7518 §3.4)

    def verifies(self, signing_input: bytes, signature: bytes) -> bool:
        public_key = self.public_key
        try:
            if isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
                return True
            _curve, digest, size = _EC_ALGORITHMS[self.algorithm]
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            public_key.verify(der, signing_input, ec.ECDSA(digest))
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class VerifiedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    kid: str


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS without checking its signature — never trust the result."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise InvalidToken("go-jose/go-jose: compact JWS format must have three parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidToken(f"go-jose/go-jose: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("go-jose/go-jose: invalid JWS object")
    return header, claims


class KeyRing:
    """Signing keys of one cluster: the newest signs; older keys stay published in the JWKS until dropped.

    Like a kube-apiserver started with several --service-account-key-file flags and the newest
    --service-account-signing-key-file: every listed key verifies, one key signs."""

    def __init__(self, keys: Iterable[PrivateKey | SigningKey]) -> None:
        self._keys: dict[str, SigningKey] = {}
        self._active = ""
        for key in keys:
            self.add(key)
        if not self._keys:
            raise ValueError("a key ring needs at least one key")

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> KeyRing:
        return cls([new_signing_key(algorithm)])

    @classmethod
    def from_pem(cls, pem: bytes) -> KeyRing:
        """A ring holding one PEM private key (PKCS#1, SEC1 or PKCS#8), e.g. a --service-account-key-file."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("unsupported service-account key type, must be RSA or ECDSA")
        return cls([key])

    # -- membership -------------------------------------------------------------------------------------------
    def add(self, key: PrivateKey | SigningKey, *, activate: bool = True) -> str:
        """Publish a key (and, by default, sign new tokens with it). Returns its kid."""
        signing = key if isinstance(key, SigningKey) else SigningKey.of(key)
        self._keys[signing.kid] = signing
        if activate or not self._active:
            self._active = signing.kid
        return signing.kid

    def rotate(self, algorithm: str = "RS256") -> str:
        """A fresh key signs from now on; tokens signed by older keys keep verifying until those are dropped."""
        return self.add(new_signing_key(algorithm))

    def drop(self, kid: str) -> None:
        """Stop publishing and accepting a key. The active key cannot be dropped (rotate first)."""
        if kid not in self._keys:
            raise KeyError(kid)
        if kid == self._active:
            raise ValueError("cannot drop the active signing key; rotate first")
        del self._keys[kid]

    @property
    def active(self) -> SigningKey:
        return self._keys[self._active]

    @property
    def active_kid(self) -> str:
        return self._active

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    def algorithms(self) -> list[str]:
        # getAlgs: a sorted set
        return sorted({k.algorithm for k in self._keys.values()})

    # -- publication ------------------------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k.public_key, k.kid) for k in self._keys.values()]}

    def signing_key_pem(self) -> bytes:
        return self.active.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    # -- tokens -----------------------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any]) -> str:
        key = self.active
        header = b64url_encode(go_json({"alg": key.algorithm, "kid": key.kid}))
        payload = b64url_encode(go_json(claims))
        signing_input = f"{header}.{payload}".encode("ascii")
        return f"{header}.{payload}.{b64url_encode(key.sign(signing_input))}"

    def verify(self, token: str) -> VerifiedToken:
        """Check the signature against the key named by `kid` (every key when the header names none)."""
        header, claims = decode_unverified(token)
        header_b64, payload_b64, signature_b64 = token.strip().split(".")
        alg = header.get("alg")
        if alg not in SUPPORTED_ALGORITHMS:
            raise InvalidToken(f"go-jose/go-jose: unexpected signature algorithm {alg!r}")
        kid = header.get("kid")
        if isinstance(kid, str) and kid:
            candidates = [self._keys[kid]] if kid in self._keys else []
        else:
            candidates = list(self._keys.values())
        if not candidates:
            raise InvalidToken("invalid signature, no keys found")
        try:
            signature = b64url_decode(signature_b64)
        except (ValueError, binascii.Error):
            raise InvalidToken("go-jose/go-jose: illegal base64 data in signature") from None
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        for key in candidates:
            if key.algorithm == alg and key.verifies(signing_input, signature):
                return VerifiedToken(header, claims, key.kid)
        raise InvalidToken("go-jose/go-jose: error in cryptographic primitive")
