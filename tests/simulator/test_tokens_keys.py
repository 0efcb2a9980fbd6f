"""KeyRing: key ids (Kubernetes' own test vectors), JWS shape, JWKS, verification and rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from tokens_support import segments

from kubesim import KubeSim, SimOptions
from kubesim.tokens import InvalidToken, KeyRing, b64url_encode, key_id, new_signing_key

# pkg/serviceaccount/jwt_test.go: rsaPublicKey / rsaKeyID and ecdsaPublicKey / ecdsaKeyID
K8S_RSA_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA249XwEo9k4tM8fMxV7zx
OhcrP+WvXn917koM5Qr2ZXs4vo26e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecI
zshKuv1gKIxbbLQMOuK1eA/4HALyEkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG
51RoiMgbQxaCyYxGfNLpLAZK9L0Tctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJU
j7OTh/AjjCnMnkgvKT2tpKxYQ59PgDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEi
B4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRM
WwIDAQAB
-----END PUBLIC KEY-----
"""
K8S_RSA_KEY_ID = "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU"

# the matching private key of jwt_test.go ("Fake value for testing")
K8S_RSA_PRIVATE_KEY = b"""-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA249XwEo9k4tM8fMxV7zxOhcrP+WvXn917koM5Qr2ZXs4vo26
e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecIzshKuv1gKIxbbLQMOuK1eA/4HALy
EkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG51RoiMgbQxaCyYxGfNLpLAZK9L0T
ctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJUj7OTh/AjjCnMnkgvKT2tpKxYQ59P
gDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEiB4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp
1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRMWwIDAQABAoIBAHJx8GqyCBDNbqk7
e7/hI9iE1S10Wwol5GH2RWxqX28cYMKq+8aE2LI1vPiXO89xOgelk4DN6urX6xjK
ZBF8RRIMQy/e/O2F4+3wl+Nl4vOXV1u6iVXMsD6JRg137mqJf1Fr9elg1bsaRofL
Q7CxPoB8dhS+Qb+hj0DhlqhgA9zG345CQCAds0ZYAZe8fP7bkwrLqZpMn7Dz9WVm
++YgYYKjuE95kPuup/LtWfA9rJyE/Fws8/jGvRSpVn1XglMLSMKhLd27sE8ZUSV0
2KUzbfRGE0+AnRULRrjpYaPu0XQ2JjdNvtkjBnv27RB89W9Gklxq821eH1Y8got8
FZodjxECgYEA93pz7AQZ2xDs67d1XLCzpX84GxKzttirmyj3OIlxgzVHjEMsvw8v
sjFiBU5xEEQDosrBdSknnlJqyiq1YwWG/WDckr13d8G2RQWoySN7JVmTQfXcLoTu
YGRiiTuoEi3ab3ZqrgGrFgX7T/cHuasbYvzCvhM2b4VIR3aSxU2DTUMCgYEA4x7J
T/ErP6GkU5nKstu/mIXwNzayEO1BJvPYsy7i7EsxTm3xe/b8/6cYOz5fvJLGH5mT
Q8YvuLqBcMwZardrYcwokD55UvNLOyfADDFZ6l3WntIqbA640Ok2g1X4U8J09xIq
ZLIWK1yWbbvi4QCeN5hvWq47e8sIj5QHjIIjRwkCgYEAyNqjltxFN9zmzPDa2d24
EAvOt3pYTYBQ1t9KtqImdL0bUqV6fZ6PsWoPCgt+DBuHb+prVPGP7Bkr/uTmznU/
+AlTO+12NsYLbr2HHagkXE31DEXE7CSLa8RNjN/UKtz4Ohq7vnowJvG35FCz/mb3
FUHbtHTXa2+bGBUOTf/5Hw0CgYBxw0r9EwUhw1qnUYJ5op7OzFAtp+T7m4ul8kCa
SCL8TxGsgl+SQ34opE775dtYfoBk9a0RJqVit3D8yg71KFjOTNAIqHJm/Vyyjc+h
i9rJDSXiuczsAVfLtPVMRfS0J9QkqeG4PIfkQmVLI/CZ2ZBmsqEcX+eFs4ZfPLun
Qsxe2QKBgGuPilIbLeIBDIaPiUI0FwU8v2j8CEQBYvoQn34c95hVQsig/o5z7zlo
UsO0wlTngXKlWdOcCs1kqEhTLrstf48djDxAYAxkw40nzeJOt7q52ib/fvf4/UBy
X024wzbiw1q07jFCyfQmODzURAx1VNT7QVUMdz/N8vy47/H40AZJ
-----END RSA PRIVATE KEY-----
"""

K8S_ECDSA_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEH6cuzP8XuD5wal6wf9M6xDljTOPL
X2i8uIp/C/ASqiIGUeeKQtX0/IR3qCXyThP/dbCiHrF3v1cuhBOHY8CLVg==
-----END PUBLIC KEY-----"""
K8S_ECDSA_PRIVATE_KEY = b"""-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIEZmTmUhuanLjPA2CLquXivuwBDHTt5XYwgIr/kA1LtRoAoGCCqGSM49
AwEHoUQDQgAEH6cuzP8XuD5wal6wf9M6xDljTOPLX2i8uIp/C/ASqiIGUeeKQtX0
/IR3qCXyThP/dbCiHrF3v1cuhBOHY8CLVg==
-----END EC PRIVATE KEY-----"""
K8S_ECDSA_KEY_ID = "SoABiieYuNx4UdqYvZRVeuC6SihxgLrhLy9peHMHpTc"


def _public(pem: bytes) -> Any:
    return serialization.load_pem_public_key(pem)


def test_key_ids_match_the_kubernetes_test_vectors() -> None:
    assert key_id(_public(K8S_RSA_PUBLIC_KEY)) == K8S_RSA_KEY_ID
    assert key_id(_public(K8S_ECDSA_PUBLIC_KEY)) == K8S_ECDSA_KEY_ID


@pytest.mark.parametrize(
    ("pem", "kid", "alg"),
    [(K8S_RSA_PRIVATE_KEY, K8S_RSA_KEY_ID, "RS256"), (K8S_ECDSA_PRIVATE_KEY, K8S_ECDSA_KEY_ID, "ES256")],
)
def test_a_token_signed_with_the_kubernetes_test_key_carries_its_key_id(
    pem: bytes, kid: str, alg: str
) -> None:
    ring = KeyRing.from_pem(pem)
    header, _payload = segments(ring.sign({"sub": "system:serviceaccount:test:my-service-account"}))
    # go-jose writes exactly alg and kid, in that order, and no typ
    assert header == f'{{"alg":"{alg}","kid":"{kid}"}}'.encode()
    assert ring.active_kid == kid


def test_claims_are_serialised_with_sorted_keys_nested_too_and_no_spaces() -> None:
    ring = KeyRing.from_pem(K8S_ECDSA_PRIVATE_KEY)
    token = ring.sign(
        {
            "sub": "s",
            "aud": ["a"],
            "kubernetes.io": {"serviceaccount": {"uid": "u", "name": "n"}, "namespace": "ns"},
        }
    )
    _header, payload = segments(token)
    assert (
        payload
        == b'{"aud":["a"],"kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"n","uid":"u"}},"sub":"s"}'
    )


def test_html_characters_are_escaped_as_go_does() -> None:
    ring = KeyRing.from_pem(K8S_ECDSA_PRIVATE_KEY)
    _header, payload = segments(ring.sign({"x": "<a&b>"}))
    assert payload == b'{"x":"\\u003ca\\u0026b\\u003e"}'


@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384", "ES512"])
def test_each_algorithm_round_trips_and_verifies_with_pyjwt_against_the_jwks(alg: str) -> None:
    ring = KeyRing.generate(alg)
    token = ring.sign({"sub": "x", "n": 1})
    assert ring.verify(token).claims == {"n": 1, "sub": "x"}
    # an independent verifier reading only the published JWKS accepts it
    jwk = jwt.PyJWKSet.from_dict(ring.jwks()).keys[0]
    assert jwk.key_id == ring.active_kid
    assert jwt.decode(token, jwk.key, algorithms=[alg]) == {"n": 1, "sub": "x"}


def test_jwks_entries_have_the_kubernetes_field_order() -> None:
    rsa_ring = KeyRing.from_pem(K8S_RSA_PRIVATE_KEY)
    (rsa_jwk,) = rsa_ring.jwks()["keys"]
    assert list(rsa_jwk) == ["use", "kty", "kid", "alg", "n", "e"]
    assert rsa_jwk["use"] == "sig" and rsa_jwk["kty"] == "RSA" and rsa_jwk["alg"] == "RS256"
    assert rsa_jwk["kid"] == K8S_RSA_KEY_ID and rsa_jwk["e"] == "AQAB"

    ec_ring = KeyRing.from_pem(K8S_ECDSA_PRIVATE_KEY)
    (ec_jwk,) = ec_ring.jwks()["keys"]
    assert list(ec_jwk) == ["use", "kty", "kid", "crv", "alg", "x", "y"]
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["alg"], ec_jwk["kid"]) == (
        "EC",
        "P-256",
        "ES256",
        K8S_ECDSA_KEY_ID,
    )
    # coordinates are fixed-size (32 bytes → 43 base64url characters)
    assert len(ec_jwk["x"]) == len(ec_jwk["y"]) == 43


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() -> None:
    ring = KeyRing.from_pem(K8S_ECDSA_PRIVATE_KEY)
    old_kid = ring.active_kid
    old_token = ring.sign({"sub": "old"})

    new_kid = ring.rotate("RS256")
    assert new_kid != old_kid and ring.active_kid == new_kid
    new_token = ring.sign({"sub": "new"})
    assert segments(new_token)[0] == f'{{"alg":"RS256","kid":"{new_kid}"}}'.encode()
    assert ring.verify(old_token).kid == old_kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [old_kid, new_kid]
    assert ring.algorithms() == ["ES256", "RS256"]

    ring.drop(old_kid)
    with pytest.raises(InvalidToken, match="invalid signature, no keys found"):
        ring.verify(old_token)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new_kid]
    assert ring.verify(new_token).claims == {"sub": "new"}


def test_the_active_key_cannot_be_dropped() -> None:
    ring = KeyRing.generate("ES256")
    with pytest.raises(ValueError, match="rotate first"):
        ring.drop(ring.active_kid)
    with pytest.raises(KeyError):
        ring.drop("no-such-kid")


def test_signing_key_pem_loads_back_to_the_same_key_id() -> None:
    ring = KeyRing.generate("ES256")
    assert KeyRing.from_pem(ring.signing_key_pem()).active_kid == ring.active_kid


def _forge(token: str, header: dict[str, Any] | None = None, payload: dict[str, Any] | None = None) -> str:
    h, p, s = token.split(".")
    if header is not None:
        h = b64url_encode(json.dumps(header).encode())
    if payload is not None:
        p = b64url_encode(json.dumps(payload).encode())
    return f"{h}.{p}.{s}"


def test_tampering_and_algorithm_confusion_are_rejected() -> None:
    ring = KeyRing.generate("ES256")
    token = ring.sign({"sub": "a"})
    with pytest.raises(InvalidToken, match="error in cryptographic primitive"):
        ring.verify(_forge(token, payload={"sub": "b"}))
    for alg in ("none", "HS256"):
        with pytest.raises(InvalidToken, match="unexpected signature algorithm"):
            ring.verify(_forge(token, header={"alg": alg, "kid": ring.active_kid}))
    # a header claiming RS256 for an EC key never verifies
    with pytest.raises(InvalidToken):
        ring.verify(_forge(token, header={"alg": "RS256", "kid": ring.active_kid}))
    with pytest.raises(InvalidToken, match="three parts"):
        ring.verify("not-a-jwt")


def test_a_token_without_kid_is_tried_against_every_key() -> None:
    ring = KeyRing.generate("ES256")
    token = ring.sign({"sub": "a"})
    ring.rotate("ES256")
    h = b64url_encode(b'{"alg":"ES256"}')
    _h, p, _s = token.split(".")
    # re-sign without kid using the first key
    first = ring.get(ring.kids[0])
    assert first is not None
    signature = first.sign(f"{h}.{p}".encode())
    assert ring.verify(f"{h}.{p}.{b64url_encode(signature)}").kid == ring.kids[0]


def test_a_foreign_key_does_not_verify() -> None:
    ours, theirs = KeyRing.generate("ES256"), KeyRing([new_signing_key("ES256")])
    with pytest.raises(InvalidToken, match="no keys found"):
        ours.verify(theirs.sign({"sub": "x"}))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(claims=st.dictionaries(st.text(max_size=12), _json, max_size=6))
def test_any_json_claims_round_trip(claims: dict[str, Any]) -> None:
    ring = _RING
    assert ring.verify(ring.sign(claims)).claims == claims


_RING = KeyRing.generate("ES256")


async def test_a_configured_signing_key_signs(tmp_path: Path) -> None:
    """SimOptions.signing_key_pem (--service-account-signing-key-file): that key signs, and only it is published."""
    key = new_signing_key("ES256")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    async with KubeSim(SimOptions(signing_key_pem=pem), state_dir=tmp_path / "sim") as sim:
        assert [k["kid"] for k in sim.ctx.keys.jwks()["keys"]] == [key_id(key.public_key())]
