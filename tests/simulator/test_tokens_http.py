"""TokenRequest, TokenReview, SelfSubjectReview and issuer discovery over HTTPS against a running simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from kubesim_support import call, client

from kubesim import KubeSim, SimOptions
from kubesim.kinds import PODS

TOKEN_PATH = "/api/v1/namespaces/default/serviceaccounts/{name}/token"
REQUEST = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"}


def _segment(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


async def create_sa(sim: KubeSim, name: str) -> dict[str, Any]:
    async with client(sim) as s:
        code, body, _ = await call(
            s, "POST", "/api/v1/namespaces/default/serviceaccounts", json={"metadata": {"name": name}}
        )
    assert code == 201, body
    result: dict[str, Any] = body
    return result


async def request_token(sim: KubeSim, name: str, **spec: Any) -> tuple[int, Any, Any]:
    async with client(sim) as s:
        return await call(s, "POST", TOKEN_PATH.format(name=name), json={**REQUEST, "spec": spec})


async def token_of(sim: KubeSim, name: str, **spec: Any) -> str:
    code, body, _ = await request_token(sim, name, **spec)
    assert code == 201, body
    token: str = body["status"]["token"]
    return token


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(SimOptions(max_token_expiration=7200), state_dir=tmp_path / "capped") as sim:
        yield sim


async def test_token_request_answers_201_with_a_signed_bound_token(kubesim: KubeSim) -> None:
    sa = await create_sa(kubesim, "jenkins")
    code, body, resp = await request_token(kubesim, "jenkins")
    assert code == 201 and resp.content_type == "application/json"
    assert body["kind"] == "TokenRequest" and body["apiVersion"] == "authentication.k8s.io/v1"
    assert body["spec"] == {"audiences": [kubesim.url], "expirationSeconds": 3600, "boundObjectRef": None}
    header_b64, payload_b64, _sig = body["status"]["token"].split(".")
    assert _segment(header_b64) == f'{{"alg":"RS256","kid":"{kubesim.ctx.keys.active_kid}"}}'.encode()
    raw = _segment(payload_b64)
    claims = json.loads(raw)
    assert raw == json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    assert claims["iss"] == kubesim.url and claims["aud"] == [kubesim.url]
    assert claims["kubernetes.io"] == {
        "namespace": "default",
        "serviceaccount": {"name": "jenkins", "uid": sa["metadata"]["uid"]},
    }
    assert claims["exp"] - claims["iat"] == 3600
    assert _epoch(body["status"]["expirationTimestamp"]) <= claims["exp"]


async def test_the_token_verifies_against_the_published_jwks(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    token = await token_of(kubesim, "jenkins", audiences=["vault"], expirationSeconds=600)
    async with client(kubesim) as s:
        code, config, resp = await call(s, "GET", "/.well-known/openid-configuration")
        assert code == 200 and resp.headers["Cache-Control"] == "public, max-age=3600"
        assert resp.content_type == "application/json"
        assert config == {
            "issuer": kubesim.url,
            "jwks_uri": f"{kubesim.url}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        async with s.get("/openid/v1/jwks") as resp:
            assert resp.status == 200 and resp.content_type == "application/jwk-set+json"
            assert resp.headers["Cache-Control"] == "public, max-age=3600"
            jwks = json.loads(await resp.text())
    assert [list(k) for k in jwks["keys"]] == [["use", "kty", "kid", "alg", "n", "e"]]
    key = jwt.PyJWKSet.from_dict(jwks)[kubesim.ctx.keys.active_kid]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="vault", issuer=kubesim.url)
    assert claims["sub"] == "system:serviceaccount:default:jenkins"


async def test_expiration_below_ten_minutes_is_422(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    code, body, _ = await request_token(kubesim, "jenkins", expirationSeconds=60)
    assert code == 422
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 60: '
        "may not specify a duration less than 10 minutes",
        "reason": "Invalid",
        "details": {
            "group": "authentication.k8s.io",
            "kind": "TokenRequest",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: 60: may not specify a duration less than 10 minutes",
                    "field": "spec.expirationSeconds",
                }
            ],
        },
        "code": 422,
    }


async def test_a_missing_service_account_is_a_404_status(kubesim: KubeSim) -> None:
    code, body, _ = await request_token(kubesim, "nobody")
    assert code == 404
    assert body["reason"] == "NotFound" and body["message"] == 'serviceaccounts "nobody" not found'
    assert body["details"] == {"name": "nobody", "kind": "serviceaccounts"}


async def test_a_body_that_is_not_json_is_400(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    async with client(kubesim) as s:
        code, body, _ = await call(
            s,
            "POST",
            TOKEN_PATH.format(name="jenkins"),
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert code == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"


async def test_the_maximum_expiration_caps_with_a_warning_header(capped: KubeSim) -> None:
    await create_sa(capped, "jenkins")
    code, body, resp = await request_token(capped, "jenkins", expirationSeconds=86400)
    assert code == 201
    assert (
        resp.headers["Warning"] == '299 - "requested expiration of 86400 seconds shortened to 7200 seconds"'
    )
    assert body["spec"]["expirationSeconds"] == 7200
    claims = json.loads(_segment(body["status"]["token"].split(".")[1]))
    assert claims["exp"] - claims["iat"] == 7200


async def test_bound_secret_missing_404_wrong_uid_409(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "s1"}
    code, body, _ = await request_token(kubesim, "jenkins", boundObjectRef=ref)
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'secrets "s1" not found')
    async with client(kubesim) as s:
        code, secret, _ = await call(
            s, "POST", "/api/v1/namespaces/default/secrets", json={"metadata": {"name": "s1"}}
        )
    assert code == 201
    code, body, _ = await request_token(kubesim, "jenkins", boundObjectRef={**ref, "uid": "0000"})
    assert (code, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith(
        'Operation cannot be fulfilled on Secret "s1": the UID in the bound object reference (0000)'
    )
    code, body, _ = await request_token(
        kubesim, "jenkins", boundObjectRef={**ref, "uid": secret["metadata"]["uid"]}
    )
    assert code == 201
    claims = json.loads(_segment(body["status"]["token"].split(".")[1]))
    assert claims["kubernetes.io"]["secret"] == {"name": "s1", "uid": secret["metadata"]["uid"]}


async def test_a_pod_bound_token_and_a_pod_of_another_account(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    pod = kubesim.store.create(
        PODS,
        "default",
        {
            "metadata": {"name": "p1"},
            "spec": {"serviceAccountName": "jenkins", "nodeName": "node-a", "containers": []},
        },
    )
    kubesim.store.create(
        PODS,
        "default",
        {"metadata": {"name": "p2"}, "spec": {"serviceAccountName": "default", "containers": []}},
    )
    code, body, _ = await request_token(
        kubesim, "jenkins", boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p1"}
    )
    assert code == 201
    private = json.loads(_segment(body["status"]["token"].split(".")[1]))["kubernetes.io"]
    assert private["pod"] == {"name": "p1", "uid": pod["metadata"]["uid"]} and private["node"] == {
        "name": "node-a"
    }
    code, body, _ = await request_token(
        kubesim, "jenkins", boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "p2"}
    )
    assert (code, body["reason"]) == (400, "BadRequest")
    code, body, _ = await request_token(
        kubesim, "jenkins", boundObjectRef={"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}
    )
    assert (code, body["message"]) == (400, "cannot bind token to object of type /v1, Kind=ConfigMap")


async def test_token_review_and_self_subject_review(kubesim: KubeSim) -> None:
    sa = await create_sa(kubesim, "jenkins")
    token = await token_of(kubesim, "jenkins")
    jti = json.loads(_segment(token.split(".")[1]))["jti"]
    user = {
        "username": "system:serviceaccount:default:jenkins",
        "uid": sa["metadata"]["uid"],
        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]},
    }
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    async with client(kubesim) as s:
        code, body, _ = await call(s, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", json=review)
        assert code == 201
        assert body["status"] == {"authenticated": True, "user": user, "audiences": [kubesim.url]}
        code, body, _ = await call(
            s, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", json={**review, "spec": {"token": ""}}
        )
        assert (code, body["message"]) == (400, "token is required for TokenReview in authentication")
        code, body, _ = await call(
            s,
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json={**review, "spec": {"token": "garbage"}},
        )
        assert code == 201 and body["status"] == {"user": {}, "error": "invalid bearer token"}
    async with client(kubesim, user=None, token=token) as s:
        code, body, _ = await call(
            s,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    assert code == 201 and body["status"] == {"userInfo": user}


async def test_revoked_and_rotated_tokens_over_http(kubesim: KubeSim) -> None:
    await create_sa(kubesim, "jenkins")
    old = await token_of(kubesim, "jenkins")
    old_kid = kubesim.ctx.keys.active_kid
    new_kid = kubesim.ctx.rotate_signing_key()
    new = await token_of(kubesim, "jenkins")
    ssr = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    for token in (old, new):
        async with client(kubesim, user=None, token=token) as s:
            assert (await call(s, "POST", path, json=ssr))[0] == 201
    async with client(kubesim) as s:
        _code, jwks, _ = await call(s, "GET", "/openid/v1/jwks")
    assert [k["kid"] for k in json.loads(jwks)["keys"]] == [old_kid, new_kid]

    kubesim.ctx.drop_signing_key(old_kid)
    async with client(kubesim, user=None, token=old) as s:
        code, body, _ = await call(s, "POST", path, json=ssr)
    assert code == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    async with client(kubesim, user=None, token=new) as s:
        assert (await call(s, "POST", path, json=ssr))[0] == 201
