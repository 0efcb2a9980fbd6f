"""What the server says about a token: TokenReview and SelfSubjectReview answers, and the bound-object checks that
make revocation work (a deleted or re-created Secret, a deleted service account, the legacy labels)."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
from conformance_support import Answer, Pair, Peer, assert_same, status_of

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SELF_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SELF_REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def review(token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


async def mint(pair: Pair, account: str, spec: dict[str, Any] | None = None) -> tuple[str, str]:
    """A token from each server for the same request (the service account is created if missing)."""
    ns = pair.namespace
    for peer in pair.peers:
        answer = await peer.call(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
        )
        assert answer.status in (201, 409), answer.body
    sim, real = await pair.setup(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec or {}},
    )
    return sim.token, real.token


async def each(
    pair: Pair, tokens: tuple[str, str], method: str, path: str, body: Any
) -> tuple[Answer, Answer]:
    """The request made with each server's own token."""
    return (
        await pair.sim.call(method, path, body, token=tokens[0]),
        await pair.real.call(method, path, body, token=tokens[1]),
    )


async def reviews(
    pair: Pair, tokens: tuple[str, str], audiences: list[str] | None = None
) -> tuple[Answer, Answer]:
    return (
        await pair.sim.call("POST", REVIEWS, review(tokens[0], audiences)),
        await pair.real.call("POST", REVIEWS, review(tokens[1], audiences)),
    )


async def refused_reviews(pair: Pair, tokens: tuple[str, str]) -> tuple[Answer, Answer]:
    """Reviews once the real server has seen a deletion: its authenticator reads objects through informers,
    which lag the deletion by a moment, and a success in that moment is cached ~10 s (bounded wait)."""
    for _ in range(150):
        sim, real = await reviews(pair, tokens)
        if not real.body["status"].get("authenticated"):
            break
        await asyncio.sleep(0.1)
    return sim, real


def servers(pair: Pair) -> tuple[str, ...]:
    return (pair.sim.url, pair.real.url)


async def test_a_valid_token_reviewed(pair: Pair) -> None:
    tokens = await mint(pair, "robot", {"audiences": ["token-broker"]})
    sim, real = await reviews(pair, tokens, ["token-broker"])
    assert (sim.status, real.status) == (201, 201)
    assert_same(sim.body["status"], real.body["status"])
    assert real.body["status"]["authenticated"] is True


@pytest.mark.parametrize(
    ("token", "audiences"),
    [("not-a-jwt", None), ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", None), ("", None)],
    ids=["garbage", "unsigned-shape", "empty"],
)
async def test_bad_tokens_reviewed(pair: Pair, token: str, audiences: list[str] | None) -> None:
    sim, real = await pair.both("POST", REVIEWS, review(token, audiences))
    assert sim.status == real.status
    if real.status == 201:
        assert_same(sim.body["status"], real.body["status"])
    else:
        assert_same(status_of(sim), status_of(real))


async def test_a_token_for_another_audience_reviewed(pair: Pair) -> None:
    tokens = await mint(pair, "robot", {"audiences": ["vault"]})
    sim, real = await reviews(pair, tokens, ["token-broker"])
    assert_same(sim.body["status"], real.body["status"])
    assert real.body["status"].get("authenticated") is not True


async def test_self_subject_review_of_a_service_account_token(pair: Pair) -> None:
    tokens = await mint(pair, "robot")
    sim, real = await each(pair, tokens, "POST", SELF_REVIEWS, SELF_REVIEW)
    assert (sim.status, real.status) == (201, 201)
    assert_same(sim.body, real.body, servers=servers(pair))


async def _secret(pair: Pair, name: str) -> None:
    await pair.setup(
        "POST",
        f"/api/v1/namespaces/{pair.namespace}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}},
    )


async def test_a_token_whose_secret_is_deleted_is_refused(pair: Pair) -> None:
    await _secret(pair, "binding")
    bound = {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "binding"}}
    tokens = await mint(pair, "robot", bound)
    # first use after the deletion: a real server has nothing cached for this token yet
    await pair.setup("DELETE", f"/api/v1/namespaces/{pair.namespace}/secrets/binding")
    sim, real = await refused_reviews(pair, tokens)
    assert_same(sim.body["status"], real.body["status"])
    sim, real = await each(pair, tokens, "POST", SELF_REVIEWS, SELF_REVIEW)
    assert_same(status_of(sim), status_of(real))
    assert real.status == 401


async def test_a_token_whose_secret_was_recreated_is_refused(pair: Pair) -> None:
    await _secret(pair, "binding")
    bound = {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "binding"}}
    tokens = await mint(pair, "robot", bound)
    await pair.setup("DELETE", f"/api/v1/namespaces/{pair.namespace}/secrets/binding")
    await _secret(pair, "binding")
    sim, real = await refused_reviews(pair, tokens)
    assert_same(sim.body["status"], real.body["status"])
    assert real.body["status"].get("authenticated") is not True


async def test_a_token_whose_service_account_is_deleted_is_refused(pair: Pair) -> None:
    tokens = await mint(pair, "doomed")
    await pair.setup("DELETE", f"/api/v1/namespaces/{pair.namespace}/serviceaccounts/doomed")
    sim, real = await refused_reviews(pair, tokens)
    assert_same(sim.body["status"], real.body["status"])
    assert real.body["status"].get("authenticated") is not True


async def _legacy_tokens(pair: Pair) -> tuple[str, str]:
    ns = pair.namespace
    await pair.setup(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "legacy"}},
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "legacy-token", "annotations": {"kubernetes.io/service-account.name": "legacy"}},
    }
    await pair.setup("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    tokens = [await _filled_token(peer, ns) for peer in pair.peers]
    return tokens[0], tokens[1]


async def _filled_token(peer: Peer, namespace: str) -> str:
    for _ in range(200):
        answer = await peer.call("GET", f"/api/v1/namespaces/{namespace}/secrets/legacy-token")
        if token := (answer.body.get("data") or {}).get("token"):
            return base64.b64decode(token).decode()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{peer.name}: the token controller never filled the Secret")


async def test_legacy_token_use_is_labelled_and_invalid_since_refuses(pair: Pair) -> None:
    tokens = await _legacy_tokens(pair)
    sim, real = await each(pair, tokens, "POST", SELF_REVIEWS, SELF_REVIEW)
    assert (sim.status, real.status) == (201, 201)
    assert_same(sim.body, real.body, servers=servers(pair))
    path = f"/api/v1/namespaces/{pair.namespace}/secrets/legacy-token"
    labels = []
    for peer in pair.peers:
        for _ in range(100):
            secret = (await peer.call("GET", path)).body
            if "kubernetes.io/legacy-token-last-used" in (secret["metadata"].get("labels") or {}):
                labels.append(secret["metadata"]["labels"])
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{peer.name}: the token's use was never labelled")
    assert labels[0] == labels[1]

    patch = {"metadata": {"labels": {"kubernetes.io/legacy-token-invalid-since": "2024-01-01"}}}
    for peer in pair.peers:
        answer = await peer.call(
            "PATCH", path, patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert answer.status == 200, answer.body
    # a real server caches the earlier authentication of this token for ~10 s: wait it out, within a bound
    for _ in range(40):
        sim, real = await reviews(pair, tokens)
        if not real.body["status"].get("authenticated"):
            break
        await asyncio.sleep(0.5)
    assert_same(sim.body["status"], real.body["status"])


async def test_self_subject_review_of_a_certificate_user(pair: Pair) -> None:
    sim, real = await pair.both("POST", SELF_REVIEWS, SELF_REVIEW, user=("carol", ("devs",)))
    assert (sim.status, real.status) == (201, 201)
    # the x509 authenticator names the credential: X509SHA256=<the certificate's SHA-256>, each server's own
    fingerprint = re.compile(r"X509SHA256=[0-9a-f]{64}")
    for answer in (sim, real):
        ids = answer.body["status"]["userInfo"]["extra"]["authentication.kubernetes.io/credential-id"]
        assert len(ids) == 1 and fingerprint.fullmatch(ids[0]), ids
        ids[0] = "X509SHA256=<fingerprint>"
    assert_same(sim.body, real.body, servers=servers(pair))
