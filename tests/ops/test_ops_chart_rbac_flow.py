"""The chart's RBAC is enough, and every verb of it is needed: the rendered ServiceAccount, ClusterRole and
bindings are applied to the simulator (RBAC on), the broker runs as that service account, and issues for every kind
of role, revokes, and leads the janitor through the chart's Lease Role; with one verb taken out, the issuance (or
revocation) that needs it fails with a 502 that says what the API server refused."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from chart_flow import chart_objects, running_flow
from ops_tools import only


@pytest.mark.kubectl
async def test_the_chart_service_account_issues_every_kind_of_token(tmp_path: Path, chart_target) -> None:
    cluster, deployment = chart_target
    async with running_flow(tmp_path, chart_objects(deployment), cluster, deployment) as flow:
        for role, account in (
            ("deployer", "deployer"),
            ("reader", "reader"),
            ("legacy-robot", "legacy-robot"),
        ):
            status, body = await flow.issue(role)
            assert status == 201, body
            assert await flow.token_whoami(body["token"]) == f"system:serviceaccount:{flow.work}:{account}"


@pytest.mark.kubectl
async def test_the_chart_service_account_revokes_and_leads_the_janitor(tmp_path: Path, chart_target) -> None:
    cluster, deployment = chart_target
    async with running_flow(tmp_path, chart_objects(deployment), cluster, deployment) as flow:
        status, body = await flow.issue("deployer")
        assert status == 201, body
        assert await flow.token_whoami(body["token"]) == f"system:serviceaccount:{flow.work}:deployer"
        assert await flow.token_status(body["token"]) == 201

        status, answer = await flow.revoke(body["token_id"])
        assert status == 204, answer
        # the bound Secret is gone: the API server refuses the token from now on (a real one after its ~10 s
        # authentication cache of the token's earlier use)
        async with asyncio.timeout(30):
            while await flow.token_status(body["token"]) != 401:
                await asyncio.sleep(0.5)

        # the janitor's Lease, in the release namespace, through the chart's leader-election Role alone
        assert flow.broker is not None
        elector = flow.broker.elector
        assert elector is not None and elector.namespace == deployment.namespace
        async with asyncio.timeout(20):
            while not elector.still_leader():
                await asyncio.sleep(0.05)
        status, lease = await flow.admin_request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{deployment.namespace}/leases/{elector.name}"
        )
        assert status == 200 and lease["spec"]["holderIdentity"] == elector.identity


async def test_revoke_without_delete_on_secrets_is_a_clear_502(tmp_path: Path, chart_target) -> None:
    cluster, deployment = chart_target
    objects = without_verb(chart_objects(deployment), "secrets", "delete")
    async with running_flow(tmp_path, objects, cluster, deployment) as flow:
        status, body = await flow.issue("deployer")
        assert status == 201, body

        status, problem = await flow.revoke(body["token_id"])
        assert status == 502, problem
        assert problem["title"] == "Bad Gateway"
        assert 'not allowed to delete resource "secrets"' in problem["detail"], problem
        # nothing was revoked, and the record says so: the token still works
        assert await flow.token_status(body["token"]) == 201
        assert flow.broker is not None and flow.broker.store is not None
        record = await flow.broker.store.get_issuance(body["token_id"])
        assert record is not None and record.event == "issued"


def without_verb(objects: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    changed = copy.deepcopy(objects)
    rules = only(changed, "ClusterRole")["rules"]
    (rule,) = [r for r in rules if resource in r.get("resources", [])]
    assert verb in rule["verbs"]
    rule["verbs"].remove(verb)
    if not rule["verbs"]:
        rules.remove(rule)
    return changed


@pytest.mark.parametrize(
    ("resource", "verb", "role"),
    [
        ("serviceaccounts/token", "create", "deployer"),  # the TokenRequest itself
        ("serviceaccounts", "create", "reader"),  # the on-demand service account
        ("secrets", "create", "deployer"),  # the Secret a revocable token is bound to
        ("secrets", "list", "legacy-robot"),  # finding the legacy token Secret made earlier
        ("namespaces", "get", "reader"),  # the namespace_selector's labels
        ("serviceaccounts", "get", "deployer"),  # does the service account exist yet?
        ("secrets", "get", "legacy-robot"),  # polling the legacy Secret until the token controller fills it
        ("secrets", "create", "legacy-robot"),
    ],
)
async def test_one_verb_less_is_a_clear_502(
    tmp_path: Path, chart_target, resource: str, verb: str, role: str
) -> None:
    cluster, deployment = chart_target
    objects = without_verb(chart_objects(deployment), resource, verb)
    async with running_flow(tmp_path, objects, cluster, deployment) as flow:
        status, body = await flow.issue(role)
        assert status == 502, body
        assert body["title"] == "Bad Gateway"
        assert "token" not in body
        assert f'not allowed to {verb} resource "{resource}"' in body["detail"], body
