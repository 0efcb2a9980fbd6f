"""The chart's RBAC is enough, and every verb of it is needed: the rendered ServiceAccount, ClusterRole and
bindings are applied to the simulator (RBAC on), the broker runs as that service account, and issues for every kind
of role; with one verb taken out, the issuance that needs it fails with a 502 that says what the API server
refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from chart_flow import WORK, chart_objects, running_flow
from ops_tools import only


@pytest.mark.kubectl
async def test_the_chart_service_account_issues_every_kind_of_token(tmp_path: Path) -> None:
    async with running_flow(tmp_path, chart_objects()) as flow:
        for role, account in (
            ("deployer", "deployer"),
            ("reader", "reader"),
            ("legacy-robot", "legacy-robot"),
        ):
            status, body = await flow.issue(role)
            assert status == 201, body
            assert await flow.token_whoami(body["token"]) == f"system:serviceaccount:{WORK}:{account}"


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
async def test_one_verb_less_is_a_clear_502(tmp_path: Path, resource: str, verb: str, role: str) -> None:
    async with running_flow(tmp_path, without_verb(chart_objects(), resource, verb)) as flow:
        status, body = await flow.issue(role)
        assert status == 502, body
        assert body["title"] == "Bad Gateway"
        assert "token" not in body
        assert f'not allowed to {verb} resource "{resource}"' in body["detail"], body
