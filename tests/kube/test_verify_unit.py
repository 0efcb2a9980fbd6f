"""Verification rules on hand-made tokens (the simulator round trip is in test_kube_sim_verify.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from support.signing import ISSUER, Key, StaticSource, bound_claims, ec_key, rsa_key

from broker.domain.errors import BrokerError, unavailable
from broker.kube import ClusterTokenVerifier, SecretRef
from broker.kube.verify import LEGACY_ISSUER

SUBJECT = "system:serviceaccount:ci:deployer"
SECRET = SecretRef("ci", "token-broker-abc", "secret-uid")


def verifier(*keys: Key, **kw: Any) -> ClusterTokenVerifier:
    return ClusterTokenVerifier(StaticSource(*keys), **kw)


async def verify(v: ClusterTokenVerifier, token: str, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "expected_audiences": [ISSUER],
        "expected_subject": SUBJECT,
        "expected_ttl_seconds": 600,
        "expected_secret": SECRET,
    }
    args.update(kw)
    return await v.verify_bound(token, **args)


async def refused(v: ClusterTokenVerifier, token: str, match: str, **kw: Any) -> None:
    with pytest.raises(BrokerError) as info:
        await verify(v, token, **kw)
    assert info.value.status == 502
    assert "does not verify" in info.value.detail
    assert match in info.value.detail


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
async def test_rsa_tokens_verify(alg: str) -> None:
    key = rsa_key(alg)
    claims = bound_claims()
    got = await verify(verifier(key), key.sign(claims))
    assert got.jti == claims["jti"]
    assert (got.namespace, got.service_account_name, got.service_account_uid) == ("ci", "deployer", "sa-uid")
    assert (got.bound_secret_name, got.bound_secret_uid) == ("token-broker-abc", "secret-uid")
    assert got.lifetime_seconds == 600
    assert got.audiences == (ISSUER,) and got.issuer == ISSUER
    assert got.not_before is not None


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
async def test_ec_tokens_verify(alg: str) -> None:
    key = ec_key(alg)
    assert (await verify(verifier(key), key.sign(bound_claims()))).subject == SUBJECT


async def test_discovery_gives_the_issuer() -> None:
    key = rsa_key()
    v = verifier(key)
    await verify(v, key.sign(bound_claims()))
    assert await v.issuer() == ISSUER


async def test_audience_as_a_string_and_superset() -> None:
    key = rsa_key()
    claims = bound_claims()
    claims["aud"] = "vault"
    await verify(verifier(key), key.sign(claims), expected_audiences=["vault"])
    claims["aud"] = ["vault", "other"]
    await verify(verifier(key), key.sign(claims), expected_audiences=["vault"])
    await verify(verifier(key), key.sign(claims), expected_audiences=[])
    await refused(verifier(key), key.sign(claims), "lack ['argo']", expected_audiences=["vault", "argo"])


async def test_alg_none_and_hmac_are_refused() -> None:
    key = rsa_key()
    claims = bound_claims()
    none_token = jwt.encode(claims, "", algorithm="none", headers={"kid": key.kid})
    await refused(verifier(key), none_token, "algorithm 'none'")
    # the classic confusion: the RSA public key used as an HMAC secret
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in (header, claims)
    )
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    await refused(verifier(key), (signing_input + b"." + sig).decode(), "algorithm 'HS256'")


async def test_unknown_key_and_missing_kid() -> None:
    key, other = rsa_key(), rsa_key()
    await refused(verifier(key), other.sign(bound_claims()), "does not publish")
    no_kid = jwt.encode(bound_claims(), key.private, algorithm="RS256")
    await refused(verifier(key), no_kid, "no key id")


async def test_tampered_payload() -> None:
    key = rsa_key()
    token = key.sign(bound_claims())
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    await refused(verifier(key), f"{head}.{forged}.{sig}", "Signature verification failed")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti"])
async def test_required_claims(claim: str) -> None:
    key = rsa_key()
    claims = bound_claims()
    del claims[claim]
    await refused(verifier(key), key.sign(claims), claim)


async def test_expired_issuer_subject() -> None:
    key = rsa_key()
    old = bound_claims(now=int(time.time()) - 1000)
    await refused(verifier(key), key.sign(old), "expired")
    other_iss = bound_claims()
    other_iss["iss"] = "https://evil"
    await refused(verifier(key), key.sign(other_iss), "issuer")
    await refused(verifier(key), key.sign(bound_claims(name="admin")), "subject")


async def test_lifetime_must_match_what_was_granted() -> None:
    key = rsa_key()
    await refused(verifier(key), key.sign(bound_claims(ttl=7200)), "lives 7200 s")
    await verify(verifier(key), key.sign(bound_claims(ttl=3600)), expected_ttl_seconds=3600)


async def test_kubernetes_claims_must_match() -> None:
    key = rsa_key()
    claims = bound_claims()
    claims["kubernetes.io"]["namespace"] = "other"
    await refused(verifier(key), key.sign(claims), "namespace claim")
    claims = bound_claims()
    claims["kubernetes.io"]["serviceaccount"]["name"] = "x"
    await refused(verifier(key), key.sign(claims), "service account claim")
    claims = bound_claims()
    claims["kubernetes.io"]["pod"] = {"name": "p", "uid": "u"}
    await refused(verifier(key), key.sign(claims), "pod or node")


async def test_bound_secret_must_match() -> None:
    key = rsa_key()
    await refused(verifier(key), key.sign(bound_claims(secret=None)), "not bound")
    await refused(verifier(key), key.sign(bound_claims(secret=("other", "secret-uid"))), "'other'")
    await refused(verifier(key), key.sign(bound_claims(secret=("token-broker-abc", "x"))), "uid differs")
    await refused(verifier(key), key.sign(bound_claims()), "did not ask", expected_secret=None)
    unbound = await verify(verifier(key), key.sign(bound_claims(secret=None)), expected_secret=None)
    assert unbound.bound_secret_name is None


async def test_keys_unreachable_is_503() -> None:
    key = rsa_key()
    source = StaticSource(key)
    source.fail = unavailable("cannot fetch the cluster's token signing keys")
    with pytest.raises(BrokerError) as info:
        await ClusterTokenVerifier(source, issuer=ISSUER).verify_bound(
            key.sign(bound_claims()),
            expected_audiences=[],
            expected_subject=SUBJECT,
            expected_ttl_seconds=600,
            expected_secret=SECRET,
        )
    assert info.value.status == 503


async def test_legacy_tokens() -> None:
    key = rsa_key()
    claims = {
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": "ci",
        "kubernetes.io/serviceaccount/secret.name": "jenkins-token-abc",
        "kubernetes.io/serviceaccount/service-account.name": "jenkins",
        "kubernetes.io/serviceaccount/service-account.uid": "u1",
        "sub": "system:serviceaccount:ci:jenkins",
    }
    v = verifier(key)
    got = await v.verify_legacy(key.sign(claims), namespace="ci", service_account="jenkins")
    assert (got.secret_name, got.service_account_uid) == ("jenkins-token-abc", "u1")
    with pytest.raises(BrokerError, match="subject"):
        await v.verify_legacy(key.sign(claims), namespace="ci", service_account="other")
    bound = key.sign(bound_claims())
    with pytest.raises(BrokerError, match="issuer"):
        await v.verify_legacy(bound, namespace="ci", service_account="deployer")
