"""Bound claims in grants (pure policy): equality, globs, lists, non-string claims, and the reasons given."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oidc_issuer import policy_from

from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.policy import Policy

ROLES: list[dict[str, Any]] = [
    {"name": "deployer", "service_account": "deployer", "namespaces": ["ci-*"], "max_ttl": "1h"},
    {"name": "releaser", "service_account": "releaser", "namespaces": ["prod"], "max_ttl": "1h"},
    {"name": "reader", "service_account": "reader", "namespaces": ["ci-*"], "max_ttl": "1h"},
]
GRANTS: list[dict[str, Any]] = [
    {
        "name": "ci-platform",
        "groups": ["gitlab"],
        "roles": ["deployer"],
        "claims": {"project_path": "platform/*"},
    },
    {
        "name": "release",
        "groups": ["gitlab"],
        "roles": ["releaser"],
        "claims": {"project_path": ["platform/app", "platform/api"], "ref_protected": True, "ref": "v?.*"},
    },
    {"name": "readers", "groups": ["gitlab", "ops"], "roles": ["reader"]},
]


def gitlab(method: str = "oidc", **claims: Any) -> Caller:
    base: dict[str, Any] = {"project_path": "platform/app", "ref_protected": True, "ref": "v1.2"}
    base.update(claims)
    return Caller(
        "gitlab:project_path:x", ("gitlab",), method, {k: v for k, v in base.items() if v is not None}
    )


@pytest.fixture(scope="module")
def policy() -> Policy:
    return policy_from(ROLES, GRANTS)


def refusal(policy: Policy, caller: Caller, role: str, namespace: str) -> BrokerError:
    with pytest.raises(BrokerError) as err:
        policy.decide(caller, role, namespace, None, None)
    assert err.value.status == 403
    # the caller-facing detail is the same whatever the reason: no grant or claim is named
    assert err.value.detail == f'not allowed to use role "{role}"'
    return err.value


def test_a_glob_matches_across_path_segments(policy: Policy) -> None:
    for path in ("platform/app", "platform/team/app", "platform/"):
        assert (
            policy.decide(gitlab(project_path=path), "deployer", "ci-x", None, None).grant_name
            == "ci-platform"
        )


@pytest.mark.parametrize("path", ["other/x", "platform", "Platform/app", "xplatform/app", "../platform/x"])
def test_a_glob_is_anchored_and_case_sensitive(policy: Policy, path: str) -> None:
    err = refusal(policy, gitlab(project_path=path), "deployer", "ci-x")
    assert f"grant ci-platform: claim project_path {path!r} does not match 'platform/*'" in err.reason


def test_a_list_accepts_any_of_its_values(policy: Policy) -> None:
    assert (
        policy.decide(gitlab(project_path="platform/api"), "releaser", "prod", None, None).grant_name
        == "release"
    )
    err = refusal(policy, gitlab(project_path="platform/web"), "releaser", "prod")
    assert (
        "claim project_path 'platform/web' does not match any of ['platform/app', 'platform/api']"
        in err.reason
    )


def test_a_boolean_claim_is_compared_in_its_json_form(policy: Policy) -> None:
    # TOML `ref_protected = true` and a token's JSON true meet as "true"
    assert policy.decide(gitlab(ref_protected=True), "releaser", "prod", None, None)
    assert policy.decide(gitlab(ref_protected="true"), "releaser", "prod", None, None)
    err = refusal(policy, gitlab(ref_protected=False), "releaser", "prod")
    assert "claim ref_protected false does not match 'true'" in err.reason


def test_every_bound_claim_must_match(policy: Policy) -> None:
    err = refusal(policy, gitlab(ref="main"), "releaser", "prod")
    assert "claim ref 'main' does not match 'v?.*'" in err.reason
    err = refusal(policy, gitlab(ref=None), "releaser", "prod")
    assert "claim ref is missing" in err.reason


@pytest.mark.parametrize("value", [{"a": "platform/app"}, None, [{"y": 1}], []])
def test_objects_and_null_never_match(value: Any) -> None:
    policy = policy_from(ROLES, [{"groups": ["gitlab"], "roles": ["deployer"], "claims": {"c": "*"}}])
    caller = Caller("u", ("gitlab",), "oidc", {"c": value})
    with pytest.raises(BrokerError):
        policy.decide(caller, "deployer", "ci-x", None, None)


def test_a_list_claim_matches_when_any_element_does() -> None:
    policy = policy_from(
        ROLES, [{"groups": ["gitlab"], "roles": ["deployer"], "claims": {"teams": "platform"}}]
    )
    assert policy.decide(
        Caller("u", ("gitlab",), "oidc", {"teams": ["web", "platform"]}), "deployer", "ci-x", None, None
    )
    with pytest.raises(BrokerError):
        policy.decide(
            Caller("u", ("gitlab",), "oidc", {"teams": ["web", "ops"]}), "deployer", "ci-x", None, None
        )


def test_numbers_compare_as_text() -> None:
    policy = policy_from(
        ROLES, [{"groups": ["gitlab"], "roles": ["deployer"], "claims": {"project_id": [42, "4?"]}}]
    )
    assert policy.decide(Caller("u", ("gitlab",), "oidc", {"project_id": 42}), "deployer", "ci-x", None, None)
    assert policy.decide(
        Caller("u", ("gitlab",), "oidc", {"project_id": "47"}), "deployer", "ci-x", None, None
    )
    with pytest.raises(BrokerError):
        policy.decide(Caller("u", ("gitlab",), "oidc", {"project_id": 420}), "deployer", "ci-x", None, None)


@pytest.mark.parametrize("method", ["mtls", "api-key", "kubernetes"])
def test_claim_grants_never_match_other_callers(policy: Policy, method: str) -> None:
    # even a caller whose claims-like data would match: only verified OIDC claims count
    err = refusal(policy, gitlab(method=method), "deployer", "ci-x")
    assert "binds claims, which only OIDC callers carry" in err.reason


def test_grants_without_claims_still_apply_to_oidc_callers(policy: Policy) -> None:
    assert policy.decide(gitlab(project_path="other/x"), "reader", "ci-x", None, None).grant_name == "readers"


def test_usable_roles_honour_bound_claims(policy: Policy) -> None:
    assert [r.name for r in policy.usable_roles(gitlab())] == ["deployer", "reader", "releaser"]
    assert [r.name for r in policy.usable_roles(gitlab(project_path="other/x"))] == ["reader"]
    assert [r.name for r in policy.usable_roles(gitlab(method="api-key"))] == ["reader"]


def test_literal_text_around_wildcards_is_literal() -> None:
    policy = policy_from(
        ROLES, [{"groups": ["g"], "roles": ["deployer"], "claims": {"ref": "refs/heads/[main]+.x"}}]
    )
    assert policy.decide(
        Caller("u", ("g",), "oidc", {"ref": "refs/heads/[main]+.x"}), "deployer", "ci-a", None, None
    )
    with pytest.raises(BrokerError):
        policy.decide(Caller("u", ("g",), "oidc", {"ref": "refs/heads/m+.x"}), "deployer", "ci-a", None, None)


@given(st.text(alphabet="ab/*?", max_size=8), st.text(alphabet="ab/", max_size=8))
def test_glob_semantics_match_fnmatch_without_character_classes(pattern: str, value: str) -> None:
    import fnmatch

    policy = policy_from(ROLES, [{"groups": ["g"], "roles": ["deployer"], "claims": {"c": pattern or "x"}}])
    caller = Caller("u", ("g",), "oidc", {"c": value})
    try:
        policy.decide(caller, "deployer", "ci-a", None, None)
        allowed = True
    except BrokerError:
        allowed = False
    assert allowed == fnmatch.fnmatchcase(value, pattern or "x")


# -- rate limits follow the grant -------------------------------------------------------------------------------


def test_the_matching_grants_rate_limit_applies() -> None:
    grants: list[dict[str, Any]] = [
        {
            "name": "slow",
            "groups": ["gitlab"],
            "roles": ["deployer"],
            "rate_limit": {"per_minute": 6, "burst": 2},
        },
        {
            "name": "bulk",
            "groups": ["ops"],
            "roles": ["deployer"],
            "rate_limit": {"per_minute": 600, "burst": 50},
        },
        {"name": "plain", "groups": ["gitlab"], "roles": ["reader"]},
    ]
    policy = policy_from(ROLES, grants, rate_limit={"per_minute": 60, "burst": 10})
    choice = policy.rate_limit_for(gitlab(), "deployer", "ci-x")
    assert (choice.scope, choice.limit.per_minute, choice.limit.burst) == ("slow", 6.0, 2)
    # several grants apply: the most generous limit
    both = Caller("u", ("gitlab", "ops"), "mtls")
    assert policy.rate_limit_for(both, "deployer", "ci-x").scope == "bulk"
    # a grant without its own limit, an unknown role, a namespace outside every grant: the default bucket
    for role, ns in (("reader", "ci-x"), ("nope", "ci-x"), ("deployer", "prod")):
        choice = policy.rate_limit_for(gitlab(), role, ns)
        assert (choice.scope, choice.limit.per_minute, choice.limit.burst) == ("", 60.0, 10)
