"""TokenRequest as the broker uses it: defaults, the 600 s floor, the server's cap and its Warning, bound objects,
and the claims of every kind of token (KUBE-SEMANTICS.md, checked against the real server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import datetime
from typing import Any

import pytest
from conformance_support import Answer, Pair, assert_same, claims, header, status_of
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def token_request(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec or {}}


async def service_account(pair: Pair, name: str) -> None:
    await pair.setup(
        "POST",
        f"/api/v1/namespaces/{pair.namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )


def token_path(pair: Pair, name: str) -> str:
    return f"/api/v1/namespaces/{pair.namespace}/serviceaccounts/{name}/token"


def lifetime(answer: Answer) -> float:
    """Seconds from now until status.expirationTimestamp, rounded (the server took `now` a moment ago)."""
    expires = datetime.fromisoformat(answer.body["status"]["expirationTimestamp"])
    return float(round((expires - datetime.now(expires.tzinfo)).total_seconds() / 10) * 10)


def servers(pair: Pair) -> tuple[str, ...]:
    return (pair.sim.url, pair.real.url)


async def test_default_request_answer_and_claims(pair: Pair) -> None:
    await service_account(pair, "robot")
    sim, real = await pair.both("POST", token_path(pair, "robot"), token_request())
    assert (sim.status, real.status) == (201, 201)
    assert_same(sim.body, real.body, servers=servers(pair), what="the TokenRequest answer")
    assert lifetime(sim) == lifetime(real) == 3600
    assert_same(claims(sim.token), claims(real.token), what="claims of an unbound token")
    assert header(sim.token).keys() == header(real.token).keys() == {"alg", "kid"}


@pytest.mark.parametrize("seconds", [599, 0, -1, 2**32 + 1])
async def test_expiration_out_of_range_is_invalid_never_clamped(pair: Pair, seconds: int) -> None:
    await service_account(pair, "robot")
    sim, real = await pair.both(
        "POST", token_path(pair, "robot"), token_request({"expirationSeconds": seconds})
    )
    assert_same(status_of(sim), status_of(real))


async def test_the_cap_shortens_and_warns(pair: Pair) -> None:
    await service_account(pair, "robot")
    sim, real = await pair.both(
        "POST", token_path(pair, "robot"), token_request({"expirationSeconds": 72 * 3600})
    )
    assert (sim.status, real.status) == (201, 201)
    assert sim.body["spec"]["expirationSeconds"] == real.body["spec"]["expirationSeconds"] == 48 * 3600
    assert sim.headers.get("warning") == real.headers.get("warning")
    assert "shortened to 172800 seconds" in real.headers["warning"]


async def test_audiences_are_echoed_and_carried(pair: Pair) -> None:
    await service_account(pair, "robot")
    sim, real = await pair.both(
        "POST", token_path(pair, "robot"), token_request({"audiences": ["vault", "token-broker"]})
    )
    assert sim.body["status"] and real.body["spec"]["audiences"] == sim.body["spec"]["audiences"]
    assert claims(sim.token)["aud"] == claims(real.token)["aud"] == ["vault", "token-broker"]


async def test_a_missing_service_account_is_not_found(pair: Pair) -> None:
    sim, real = await pair.both("POST", token_path(pair, "ghost"), token_request())
    assert_same(status_of(sim), status_of(real))


async def _secret(pair: Pair, name: str) -> tuple[str, str]:
    sim, real = await pair.setup(
        "POST",
        f"/api/v1/namespaces/{pair.namespace}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}},
    )
    return sim.body["metadata"]["uid"], real.body["metadata"]["uid"]


async def test_a_secret_bound_token_carries_the_secret(pair: Pair) -> None:
    await service_account(pair, "robot")
    uids = await _secret(pair, "binding")
    bound = {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "binding"}}
    sim, real = await pair.both("POST", token_path(pair, "robot"), token_request(bound))
    assert_same(sim.body, real.body, servers=servers(pair))
    sim_claims, real_claims = claims(sim.token), claims(real.token)
    assert sim_claims["kubernetes.io"]["secret"]["uid"] == uids[0]
    assert real_claims["kubernetes.io"]["secret"]["uid"] == uids[1]
    assert_same(sim_claims, real_claims, what="claims of a Secret-bound token")


@pytest.mark.parametrize(
    "ref",
    [
        {"apiVersion": "v1", "kind": "Secret", "name": "absent"},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": "binding",
            "uid": "00000000-0000-0000-0000-000000000000",
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "binding"},
        {"apiVersion": "v2", "kind": "Secret", "name": "binding"},
        {"apiVersion": "v1", "kind": "Pod", "name": "absent"},
    ],
    ids=["missing", "wrong-uid", "configmap", "bad-api-version", "missing-pod"],
)
async def test_a_bad_bound_object_is_refused_alike(pair: Pair, ref: dict[str, str]) -> None:
    await service_account(pair, "robot")
    await _secret(pair, "binding")
    sim, real = await pair.both("POST", token_path(pair, "robot"), token_request({"boundObjectRef": ref}))
    assert_same(status_of(sim), status_of(real), what=str(ref))


def pod(name: str, account: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceAccountName": account, "containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_a_pod_bound_token_and_a_pod_of_another_account(pair: Pair) -> None:
    for name in ("robot", "other"):
        await service_account(pair, name)
    await pair.setup(
        "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": pair.namespace}}
    )
    await pair.setup("POST", f"/api/v1/namespaces/{pair.namespace}/pods", pod("p1", "robot", pair.namespace))
    bound = {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p1"}, "expirationSeconds": 600}
    sim, real = await pair.both("POST", token_path(pair, "robot"), token_request(bound))
    assert (sim.status, real.status) == (201, 201), (sim.body, real.body)
    assert_same(claims(sim.token), claims(real.token), what="claims of a pod-bound token")
    sim, real = await pair.both("POST", token_path(pair, "other"), token_request(bound))
    assert_same(status_of(sim), status_of(real))


async def test_a_node_bound_token(pair: Pair) -> None:
    await service_account(pair, "robot")
    await pair.setup(
        "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": pair.namespace}}
    )
    bound = {"boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": pair.namespace}}
    sim, real = await pair.both("POST", token_path(pair, "robot"), token_request(bound))
    assert (sim.status, real.status) == (201, 201), (sim.body, real.body)
    assert_same(claims(sim.token), claims(real.token), what="claims of a node-bound token")


async def test_key_ids_are_the_sha256_of_the_public_key(pair: Pair) -> None:
    sim, real = await pair.both("GET", "/openid/v1/jwks", headers={"Accept": "application/jwk-set+json"})
    await service_account(pair, "robot")
    tokens = await pair.both("POST", token_path(pair, "robot"), token_request())
    for jwks, token in zip((sim, real), tokens, strict=True):
        (key,) = jwks.body["keys"]
        assert header(token.token)["kid"] == key["kid"] == spki_key_id(key)
    assert_same(
        [sorted(k) for k in sim.body["keys"]], [sorted(k) for k in real.body["keys"]], what="JWK fields"
    )


def spki_key_id(jwk: dict[str, str]) -> str:
    """base64url(SHA-256(DER SubjectPublicKeyInfo)), unpadded: how kube-apiserver names its keys."""

    def number(field: str) -> int:
        raw = jwk[field]
        return int.from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), "big")

    public = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


async def test_legacy_token_secret_is_filled_alike(pair: Pair) -> None:
    await service_account(pair, "legacy")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "legacy-token", "annotations": {"kubernetes.io/service-account.name": "legacy"}},
    }
    await pair.setup("POST", f"/api/v1/namespaces/{pair.namespace}/secrets", secret)
    filled = []
    for peer in pair.peers:
        for _ in range(200):
            answer = await peer.call("GET", f"/api/v1/namespaces/{pair.namespace}/secrets/legacy-token")
            if (answer.body.get("data") or {}).get("token"):
                filled.append(answer.body)
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{peer.name}: the token controller never filled the Secret")
    sim_secret, real_secret = filled
    assert sorted(sim_secret["data"]) == sorted(real_secret["data"]) == ["ca.crt", "namespace", "token"]
    assert_same(sorted(sim_secret["metadata"]["annotations"]), sorted(real_secret["metadata"]["annotations"]))
    tokens = [base64.b64decode(s["data"]["token"]).decode() for s in filled]
    assert_same(claims(tokens[0]), claims(tokens[1]), what="claims of a legacy token")


async def test_a_legacy_token_secret_without_its_annotation_is_invalid(pair: Pair) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "orphan"},
    }
    sim, real = await pair.both("POST", f"/api/v1/namespaces/{pair.namespace}/secrets", secret)
    assert_same(status_of(sim), status_of(real))
