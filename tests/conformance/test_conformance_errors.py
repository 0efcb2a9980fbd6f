"""Status errors the broker maps to its own answers: code, reason, message and details, as the real server sends
them (apimachinery/pkg/api/errors), for the requests the broker makes."""

from __future__ import annotations

import pytest
from conformance_support import Pair, assert_same, status_of


def sa(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


async def test_missing_service_account_is_not_found(pair: Pair) -> None:
    sim, real = await pair.both("GET", f"/api/v1/namespaces/{pair.namespace}/serviceaccounts/nobody")
    assert_same(status_of(sim), status_of(real))
    assert real.status == 404


async def test_a_second_create_is_already_exists(pair: Pair) -> None:
    path = f"/api/v1/namespaces/{pair.namespace}/serviceaccounts"
    await pair.setup("POST", path, sa("twice"))
    sim, real = await pair.both("POST", path, sa("twice"))
    assert_same(status_of(sim), status_of(real))
    assert real.status == 409


@pytest.mark.parametrize("name", ["Bad_Name", "x" * 254, "-lead", "trail."])
async def test_an_invalid_name_is_invalid_with_causes(pair: Pair, name: str) -> None:
    sim, real = await pair.both("POST", f"/api/v1/namespaces/{pair.namespace}/serviceaccounts", sa(name))
    assert_same(status_of(sim), status_of(real))
    assert real.status == 422


async def test_a_missing_namespace_answers_like_the_real_server(pair: Pair) -> None:
    for method, body in (("GET", None), ("POST", sa("in-nowhere"))):
        path = "/api/v1/namespaces/no-such-namespace/serviceaccounts" + ("/x" if method == "GET" else "")
        sim, real = await pair.both(method, path, body)
        assert_same(status_of(sim), status_of(real), what=f"{method} {path}")


async def test_a_delete_with_a_stale_uid_precondition_is_a_conflict(pair: Pair) -> None:
    path = f"/api/v1/namespaces/{pair.namespace}/secrets"
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}}
    await pair.setup("POST", path, body)
    options = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"},
    }
    sim, real = await pair.both("DELETE", f"{path}/s1", options)
    assert_same(status_of(sim), status_of(real))
    assert real.status == 409


async def test_a_bad_bearer_token_is_unauthorized(pair: Pair) -> None:
    sim, real = await pair.both("GET", "/api/v1/namespaces", token="not-a-token")
    assert_same(status_of(sim), status_of(real))
    assert real.status == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/{ns}/secrets",
        "/api/v1/namespaces/{ns}/serviceaccounts/x",
        "/api/v1/namespaces",
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/l",
    ],
)
async def test_rbac_denials_name_user_verb_and_resource(pair: Pair, path: str) -> None:
    url = path.format(ns=pair.namespace)
    sim, real = await pair.both("GET", url, user=("nobody", ("team",)))
    assert_same(status_of(sim), status_of(real))
    assert real.status == 403


async def test_rbac_denial_of_a_create_and_of_a_subresource(pair: Pair) -> None:
    ns = pair.namespace
    await pair.setup("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", sa("robot"))
    for path, body in (
        (f"/api/v1/namespaces/{ns}/serviceaccounts", sa("other")),
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        ),
    ):
        sim, real = await pair.both("POST", path, body, user=("nobody", ()))
        assert_same(status_of(sim), status_of(real), what=path)
