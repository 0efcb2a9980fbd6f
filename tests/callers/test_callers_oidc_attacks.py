"""The attack list: forged, misdirected or stale OIDC tokens against the broker's HTTP edge and a real loopback
issuer. Every one is a 401 problem with a challenge, and the issuer is never asked for a token."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from oidc_issuer import (
    GRANTS,
    ROLES,
    Clock,
    Edge,
    LoopbackIssuer,
    SigningKey,
    b64json,
    b64url,
    oidc_issuer,
    policy_from,
    serve_edge,
)

from broker._kits.pki import CertificateAuthority
from broker.callers import OidcAuthenticator
from broker.callers.bearer import MAX_BEARER_BYTES


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate("oidc-test-ca")


@pytest.fixture
async def idp(ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[LoopbackIssuer]:
    issuer = await LoopbackIssuer(ca, tmp_path / "idp").start()
    yield issuer
    await issuer.stop()


@pytest.fixture
async def rogue(
    ca: CertificateAuthority, tmp_path: Path, idp: LoopbackIssuer
) -> AsyncIterator[LoopbackIssuer]:
    """A second issuer nobody trusts, whose RS256 key reuses the trusted issuer's kid."""
    key = SigningKey.generate("RS256", kid=idp.key("RS256").kid)
    issuer = await LoopbackIssuer(ca, tmp_path / "rogue", keys=[key]).start()
    yield issuer
    await issuer.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def edge(idp: LoopbackIssuer, clock: Clock) -> AsyncIterator[Edge]:
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock)])
    async with serve_edge([authenticator], policy_from(ROLES, GRANTS)) as served:
        yield served


def assert_refused(status: int, headers: dict[str, str], body: object, edge: Edge) -> dict[str, object]:
    assert status == 401, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(body, dict) and body["status"] == 401
    assert edge.issuer.requests == [], "a refused caller reached the issuer"
    return body


# -- the forgeries ---------------------------------------------------------------------------------------------


def alg_none(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": idp.key("RS256").kid}
    return f"{b64json(header)}.{b64json(idp.claims())}."


def hs256_with_the_public_key(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    # the classic key-confusion forgery: the issuer's PUBLIC key used as an HMAC secret. PyJWT refuses to sign
    # this, so it is made by hand.
    public_pem = (
        idp.key("RS256")
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = (
        f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': idp.key('RS256').kid})}.{b64json(idp.claims())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def wrong_issuer(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(iss=idp.url + "/another-tenant")


def wrong_audience(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(aud=["vault", "https://gitlab.example.com"])


def no_audience(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(aud=None)


def expired(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    now = int(time.time())
    # beyond the 60 s leeway
    return idp.sign(iat=now - 900, nbf=now - 900, exp=now - 120)


def not_yet_valid(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(nbf=int(time.time()) + 600)


def issued_in_the_future(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    now = int(time.time())
    return idp.sign(iat=now + 600, nbf=None, exp=now + 900)


def issued_too_long_ago(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    # still unexpired, but older than max_token_age (1 h) plus leeway: a token lifted from an old job log
    now = int(time.time())
    return idp.sign(iat=now - 3600 - 120, nbf=now - 3600 - 120, exp=now + 300)


def without_exp(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(exp=None)


def without_iat(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(iat=None)


def without_sub(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return idp.sign(sub=None)


def tampered_payload(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    header, _, signature = idp.sign().split(".")
    forged = idp.claims(project_path="platform/../secret-infra", sub="project_path:platform/app:ref:main")
    return f"{header}.{b64json(forged)}.{signature}"


def oversized(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    # properly signed, but larger than any real identity token (and still under aiohttp's header limit)
    pad = 4000
    token = idp.sign(pad="x" * pad)
    while len(token) <= MAX_BEARER_BYTES:
        pad += 12
        token = idp.sign(pad="x" * pad)
    assert len(token) < 8183
    return token


def untrusted_issuer_reusing_the_kid(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    assert rogue.current.kid == idp.key("RS256").kid
    return rogue.sign(rogue.claims(iss=rogue.url), key=rogue.current)


def untrusted_key_claiming_the_trusted_issuer(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    # same kid, same iss as the trusted issuer: only the signature gives it away
    return rogue.sign(idp.claims(), key=rogue.current)


def ec_signature_under_an_rsa_kid(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    ec_key = idp.key("ES256")
    borrowed = SigningKey("ES256", idp.key("RS256").kid, ec_key.private)
    return idp.sign(key=borrowed)


def not_json(idp: LoopbackIssuer, rogue: LoopbackIssuer) -> str:
    return f"{b64url(b'not json')}.{b64json(idp.claims())}.{b64url(b'sig')}"


# each forgery, and the words of the audit reason that show it failed for the right cause
ATTACKS: list[tuple[Callable[[LoopbackIssuer, LoopbackIssuer], str], str]] = [
    (alg_none, "alg 'none' not among"),
    (hs256_with_the_public_key, "alg 'HS256' not among"),
    (wrong_issuer, "/another-tenant' is not configured"),
    (wrong_audience, "lacks audience 'token-broker'"),
    (no_audience, 'missing the "aud" claim'),
    (expired, "expired token"),
    (not_yet_valid, "not yet valid (nbf)"),
    (issued_in_the_future, "not yet valid (iat)"),
    (issued_too_long_ago, "max age 3600 s"),
    (without_exp, 'missing the "exp" claim'),
    (without_iat, 'missing the "iat" claim'),
    (without_sub, 'missing the "sub" claim'),
    (tampered_payload, "Signature verification failed"),
    (oversized, "bytes refused (limit 8000)"),
    (untrusted_issuer_reusing_the_kid, "is not configured"),
    (untrusted_key_claiming_the_trusted_issuer, "Signature verification failed"),
    (ec_signature_under_an_rsa_kid, "no ES256 key with kid"),
    (not_json, "undecodable header or payload"),
]


@pytest.mark.parametrize(("attack", "why"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
async def test_attack_is_refused_and_nothing_is_issued(
    attack: Callable[[LoopbackIssuer, LoopbackIssuer], str],
    why: str,
    edge: Edge,
    idp: LoopbackIssuer,
    rogue: LoopbackIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the keys are already known (a legitimate job ran first), so no refusal is a fetch failure in disguise
    status, _, body = await edge.token(idp.sign(), role="deployer")
    assert status == 201, body
    edge.issuer.requests.clear()

    token = attack(idp, rogue)
    with caplog.at_level(logging.INFO, logger="broker.http.problem"):
        status, headers, body = await edge.token(token)
    doc = assert_refused(status, headers, body, edge)
    assert why in caplog.text
    assert token not in caplog.text
    # the detail never echoes the token
    assert token not in json.dumps(doc)
    # the untrusted issuer's key set was never consulted
    assert rogue.jwks_fetches == 0 and rogue.discovery_fetches == 0


async def test_the_same_tokens_signed_properly_are_accepted(edge: Edge, idp: LoopbackIssuer) -> None:
    """The control for the list above: what makes each attack fail is the attack, not the harness."""
    for alg in ("RS256", "ES256"):
        status, _, body = await edge.token(idp.sign(key=idp.key(alg)))
        assert status == 201, body
    caller, req = edge.issuer.requests[0]
    assert caller.method == "oidc"
    assert caller.user == "gitlab:project_path:platform/app:ref_type:branch:ref:main"
    assert caller.groups == ("gitlab",)
    assert caller.claims["project_path"] == "platform/app"
    assert req.role == "deployer"


async def test_unknown_kid_is_refused_after_exactly_one_refetch(
    edge: Edge, idp: LoopbackIssuer, clock: Clock
) -> None:
    status, _, _ = await edge.token(idp.sign())
    assert status == 201 and idp.jwks_fetches == 1
    edge.issuer.requests.clear()
    stranger = SigningKey.generate("RS256")  # never published

    clock.now += 11  # past the refetch cooldown
    status, headers, body = await edge.token(idp.sign(key=stranger))
    assert_refused(status, headers, body, edge)
    assert idp.jwks_fetches == 2  # looked once more: it might have been a key rotated in since

    # a flood of unknown kids does not turn into a flood of fetches
    for _ in range(5):
        status, headers, body = await edge.token(idp.sign(key=SigningKey("RS256", f"k{_}", stranger.private)))
        assert_refused(status, headers, body, edge)
    assert idp.jwks_fetches == 2
