from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker._kits.names import NamespaceMatcher
from broker.app.wiring import grant_from, policy_from, role_from
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.policy import Grant, Policy, RoleView
from broker.settings import BrokerConfig, GrantConfig, Mode, RoleConfig

ROLES: list[dict[str, Any]] = [
    {
        "name": "deployer",
        "service_account": "deployer",
        "namespaces": ["staging", "ci-*"],
        "default_ttl": "15m",
        "max_ttl": "1h",
        "allowed_audiences": ["vault"],
        "revocable": True,
        "description": "deploys",
    },
    {
        "name": "reader",
        "service_account": "reader",
        "namespaces": ["staging", "team-*"],
        "namespace_selector": "team=platform,env notin (prod)",
        "default_ttl": "30m",
        "max_ttl": "2h",
    },
    {
        "name": "legacy-robot",
        "service_account": "build-robot",
        "namespaces": ["legacy-ci"],
        "mode": "legacy-secret",
    },
    {
        "name": "single",
        "service_account": "single",
        "namespaces": ["only"],
        "default_ttl": "1h",
        "max_ttl": "4h",
        "default_audiences": ["api"],
        "allowed_audiences": ["vault"],
    },
    {"name": "secret-role", "service_account": "secret", "namespaces": ["*"]},
]
GRANTS: list[dict[str, Any]] = [
    {
        "name": "ci-deploys",
        "groups": ["ci"],
        "roles": ["deployer", "legacy-robot"],
        "namespaces": ["ci-*", "legacy-ci"],
        "max_ttl": "30m",
    },
    {"name": "alice", "users": ["alice"], "roles": ["*"]},
    {"name": "bob-single", "users": ["bob"], "roles": ["single"], "max_ttl": "20m"},
    {"name": "ops-single", "groups": ["ops"], "roles": ["single"], "max_ttl": "3h"},
    {"users": ["carol"], "roles": ["reader"]},
]


def make_policy(
    roles: Sequence[Mapping[str, Any]] = ROLES, grants: Sequence[Mapping[str, Any]] = GRANTS
) -> Policy:
    cfg = BrokerConfig.model_validate(
        {
            "server": {"tls_cert": "c", "tls_key": "k", "client_ca": "ca"},
            "clusters": [{"name": "dev", "in_cluster": True}],
            "roles": list(roles),
            "grants": list(grants),
        }
    )
    return policy_from(cfg)


POLICY = make_policy()


def policy_of(roles: Sequence[RoleConfig], grants: Sequence[GrantConfig]) -> Policy:
    """A Policy of sections validated one by one, turned into domain roles and grants as the app does."""
    return Policy([role_from(r) for r in roles], [grant_from(g, i) for i, g in enumerate(grants)])


def caller(user: str, *groups: str, method: str = "mtls") -> Caller:
    return Caller(user=user, groups=tuple(groups), method=method)


CI = caller("jenkins", "ci")
ALICE = caller("alice")
BOB = caller("bob")
NOBODY = caller("mallory", "interns")


def decide(
    who: Caller,
    role: str,
    namespace: str | None = None,
    ttl: int | None = None,
    audiences: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    policy: Policy = POLICY,
) -> Grant:
    return policy.decide(who, role, namespace, ttl, audiences, namespace_labels=labels)


def denied(status: int, *args: Any, **kwargs: Any) -> BrokerError:
    with pytest.raises(BrokerError) as exc:
        decide(*args, **kwargs)
    assert exc.value.status == status, exc.value
    assert exc.value.reason
    return exc.value


def public(err: BrokerError) -> tuple[int, str, str, str, float | None]:
    return (err.status, err.title, err.detail, err.type_slug, err.retry_after)


# -- no role enumeration ----------------------------------------------------------------------------------------


def test_unknown_and_unauthorised_roles_are_indistinguishable() -> None:
    unknown = denied(403, NOBODY, "no-such-role")
    # "secret-role" exists but only alice's "*" grant reaches it; rename the unknown role to compare details.
    unauthorised = denied(403, NOBODY, "secret-role")
    again_unknown = denied(403, NOBODY, "secret-rolf")
    assert public(unauthorised)[:2] == public(unknown)[:2]
    assert unauthorised.detail == 'not allowed to use role "secret-role"'
    assert again_unknown.detail == 'not allowed to use role "secret-rolf"'
    assert public(unknown)[3:] == public(unauthorised)[3:]
    # the audit trail knows the difference
    assert "unknown role" in unknown.reason
    assert "no grant" in unauthorised.reason


def test_unauthorised_caller_learns_nothing_from_other_parameters() -> None:
    # Even with a bad namespace, ttl or audience, a caller without the role only ever sees the same 403.
    for kwargs in (
        {"namespace": "Not Valid"},
        {"namespace": None},
        {"ttl": 10**9},
        {"ttl": 1},
        {"audiences": ["x"]},
    ):
        real = denied(403, NOBODY, "deployer", **kwargs)
        fake = denied(403, NOBODY, "deployez", **kwargs)
        assert real.detail.replace("deployer", "X") == fake.detail.replace("deployez", "X")
        assert public(real)[:2] == public(fake)[:2]


def test_detail_echo_is_bounded() -> None:
    err = denied(403, NOBODY, "x" * 10_000)
    assert len(err.detail) < 120
    err = denied(403, NOBODY, 'a"\n<b>')
    assert "\n" not in err.detail


def test_group_grant_does_not_match_a_user_of_that_name() -> None:
    denied(403, caller("ci"), "deployer", "ci-1")
    assert decide(caller("x", "ci"), "deployer", "ci-1").grant_name == "ci-deploys"


def test_user_grant_does_not_match_a_group_of_that_name() -> None:
    denied(403, caller("eve", "alice"), "secret-role", "default")


# -- namespaces -------------------------------------------------------------------------------------------------


def test_namespace_inside_role_and_grant() -> None:
    grant = decide(CI, "deployer", "ci-42")
    assert grant.namespace == "ci-42"
    assert grant.grant_name == "ci-deploys"
    assert grant.role.name == "deployer"


def test_namespace_outside_role() -> None:
    err = denied(403, ALICE, "deployer", "prod")
    assert err.detail == 'not allowed to use role "deployer" in namespace "prod"'
    assert "outside role 'deployer'" in err.reason


def test_namespace_outside_grant() -> None:
    err = denied(403, CI, "deployer", "staging")  # the role allows staging, the ci grant does not
    assert err.detail == 'not allowed to use role "deployer" in namespace "staging"'
    assert "ci-deploys" in err.reason


def test_namespace_required_when_role_has_several() -> None:
    err = denied(422, CI, "deployer", None)
    assert "namespace is required" in err.detail
    err = denied(422, CI, "deployer", "")
    assert "namespace is required" in err.detail


def test_namespace_defaults_to_the_only_literal() -> None:
    assert decide(ALICE, "single").namespace == "only"
    assert decide(CI, "legacy-robot").namespace == "legacy-ci"
    assert POLICY.resolve_namespace("single", None) == "only"
    assert POLICY.resolve_namespace("single", "x") == "x"
    assert POLICY.resolve_namespace("deployer", None) is None
    assert POLICY.resolve_namespace("nope", None) is None


def test_glob_only_role_has_no_default_namespace() -> None:
    denied(422, ALICE, "secret-role", None)


@pytest.mark.parametrize("namespace", ["CI-1", "ci_1", "ci-", "-ci", "a" * 64, "ci.1", "ci 1"])
def test_invalid_namespace_name(namespace: str) -> None:
    err = denied(422, ALICE, "deployer", namespace)
    assert "not a valid namespace name" in err.detail


def test_namespace_selector() -> None:
    assert POLICY.match(ALICE, "reader", "team-a").needs_namespace_labels
    assert not POLICY.match(ALICE, "deployer", "ci-1").needs_namespace_labels
    assert not POLICY.match(ALICE, "no-such-role", "team-a").needs_namespace_labels
    # a caller who may not use the role here is refused before the cluster is asked for the labels
    assert not POLICY.match(NOBODY, "reader", "team-a").needs_namespace_labels
    assert not POLICY.match(ALICE, "reader", "prod").needs_namespace_labels

    ok = {"team": "platform", "env": "staging"}
    assert decide(ALICE, "reader", "team-a", labels=ok).namespace == "team-a"
    err = denied(403, ALICE, "reader", "team-a", labels={"team": "web"})
    assert err.detail == 'not allowed to use role "reader" in namespace "team-a"'
    assert "namespace_selector" in err.reason
    denied(403, ALICE, "reader", "team-a", labels={"team": "platform", "env": "prod"})
    denied(403, ALICE, "reader", "team-a", labels={})
    # glob checks come first: a namespace outside the role is refused whatever its labels
    denied(403, ALICE, "reader", "prod", labels=ok)


def test_namespace_selector_without_labels_fails_closed() -> None:
    err = denied(500, ALICE, "reader", "team-a", labels=None)
    assert "labels" in err.reason
    # ...but only for a caller who holds the role: others still get the plain 403
    denied(403, NOBODY, "reader", "team-a", labels=None)


# -- TTLs -------------------------------------------------------------------------------------------------------


def test_default_ttl_is_the_roles_capped_by_the_grant() -> None:
    grant = decide(CI, "deployer", "ci-1")
    assert (grant.ttl_seconds, grant.request_seconds, grant.revoke_after_seconds) == (900, 900, None)
    assert decide(ALICE, "single").ttl_seconds == 3600
    assert decide(BOB, "single").ttl_seconds == 1200  # role default 1h, bob's grant caps at 20m


def test_ttl_above_role_max_is_refused_not_clamped() -> None:
    err = denied(422, ALICE, "deployer", "staging", ttl=3601)
    assert err.detail == 'ttl 1h1s exceeds the maximum of 1h for role "deployer"'
    assert "role 'deployer' max_ttl" in err.reason
    assert decide(ALICE, "deployer", "staging", ttl=3600).ttl_seconds == 3600


def test_ttl_above_grant_cap_is_refused() -> None:
    err = denied(422, CI, "deployer", "ci-1", ttl=1801)
    assert "maximum of 30m" in err.detail
    assert "grant ci-deploys" in err.reason
    assert decide(CI, "deployer", "ci-1", ttl=1800).ttl_seconds == 1800


def test_ttl_below_floor_on_non_revocable_role() -> None:
    err = denied(422, ALICE, "single", ttl=599)
    assert "10m minimum" in err.detail
    assert "not revocable" in err.detail
    grant = decide(ALICE, "single", ttl=600)
    assert (grant.ttl_seconds, grant.request_seconds, grant.revoke_after_seconds) == (600, 600, None)


def test_short_ttl_on_revocable_role_asks_for_the_floor_and_revokes() -> None:
    grant = decide(CI, "deployer", "ci-1", ttl=120)
    assert (grant.ttl_seconds, grant.request_seconds, grant.revoke_after_seconds) == (120, 600, 120)
    grant = decide(CI, "deployer", "ci-1", ttl=1)
    assert (grant.request_seconds, grant.revoke_after_seconds) == (600, 1)


@pytest.mark.parametrize("ttl", [0, -1])
def test_non_positive_ttl(ttl: int) -> None:
    denied(422, CI, "deployer", "ci-1", ttl=ttl)


def test_default_ttl_below_floor_from_a_low_grant_cap() -> None:
    # A "*" grant may cap below 600 s; config cannot see that for every role, so the decision refuses it.
    policy = make_policy(grants=[{"name": "tiny", "users": ["t"], "roles": ["*"], "max_ttl": "5m"}])
    err = denied(422, caller("t"), "single", policy=policy)
    assert err.detail.startswith("the default ttl 5m is below")
    assert decide(caller("t"), "deployer", "staging", policy=policy).revoke_after_seconds == 300


def test_most_permissive_grant_wins() -> None:
    bob_ops = caller("bob", "ops")
    grant = decide(bob_ops, "single")
    assert grant.grant_name == "ops-single"
    assert grant.ttl_seconds == 3600  # the role default: ops-single's 3h cap does not cut it to bob's 20m
    assert decide(bob_ops, "single", ttl=3 * 3600).grant_name == "ops-single"
    denied(422, BOB, "single", ttl=1201)


def test_most_permissive_among_namespace_matching_grants_only() -> None:
    grants = [
        {
            "name": "wide-ttl",
            "users": ["u"],
            "roles": ["deployer"],
            "namespaces": ["staging"],
            "max_ttl": "1h",
        },
        {
            "name": "narrow-ttl",
            "users": ["u"],
            "roles": ["deployer"],
            "namespaces": ["ci-*"],
            "max_ttl": "10m",
        },
    ]
    policy = make_policy(grants=grants)
    assert decide(caller("u"), "deployer", "staging", ttl=3600, policy=policy).grant_name == "wide-ttl"
    err = denied(422, caller("u"), "deployer", "ci-1", ttl=3600, policy=policy)
    assert "narrow-ttl" in err.reason


def test_tie_keeps_config_order() -> None:
    grants = [
        {"name": "first", "users": ["u"], "roles": ["deployer"]},
        {"name": "second", "groups": ["g"], "roles": ["*"]},
    ]
    policy = make_policy(grants=grants)
    assert decide(caller("u", "g"), "deployer", "staging", policy=policy).grant_name == "first"


# -- audiences --------------------------------------------------------------------------------------------------


def test_audiences_default() -> None:
    assert decide(CI, "deployer", "ci-1").audiences == ()
    assert decide(CI, "deployer", "ci-1", audiences=[]).audiences == ()
    assert decide(ALICE, "single").audiences == ("api",)


def test_allowed_audiences() -> None:
    assert decide(CI, "deployer", "ci-1", audiences=["vault"]).audiences == ("vault",)
    assert decide(ALICE, "single", audiences=["vault", "api", "vault"]).audiences == ("vault", "api")


def test_audience_outside_role() -> None:
    err = denied(422, CI, "deployer", "ci-1", audiences=["vault", "https://kubernetes.default.svc"])
    assert err.detail == 'audience "https://kubernetes.default.svc" is not allowed for role "deployer"'
    denied(422, ALICE, "secret-role", "default", audiences=["api"])


# -- legacy-secret ----------------------------------------------------------------------------------------------


def test_legacy_role() -> None:
    grant = decide(CI, "legacy-robot")
    assert (grant.ttl_seconds, grant.request_seconds, grant.revoke_after_seconds) == (0, 0, None)
    assert grant.audiences == ()
    assert grant.role.mode == "legacy-secret"


def test_legacy_role_refuses_ttl_and_audiences() -> None:
    err = denied(422, CI, "legacy-robot", ttl=3600)
    assert "do not expire" in err.detail
    err = denied(422, CI, "legacy-robot", audiences=["vault"])
    assert "no audience" in err.detail


# -- "*" roles, listing, lookups --------------------------------------------------------------------------------


def test_star_grant_reaches_every_role() -> None:
    assert decide(ALICE, "secret-role", "kube-system").grant_name == "alice"


def test_unnamed_grant_gets_index_name() -> None:
    assert decide(caller("carol"), "reader", "staging", labels={"team": "platform"}).grant_name == "grant-4"
    roles = [RoleConfig.model_validate({**ROLES[0], "cluster": "dev"})]
    policy = policy_of(roles, [GrantConfig(users=("u",), roles=("deployer",))])
    assert decide(caller("u"), "deployer", "staging", policy=policy).grant_name == "grant-0"


def test_role_lookup() -> None:
    role = POLICY.role("deployer")
    assert role is not None and role.service_account == "deployer"
    assert POLICY.role("nope") is None


def test_usable_roles() -> None:
    views = POLICY.usable_roles(CI)
    assert [v.name for v in views] == ["deployer", "legacy-robot"]
    deployer = views[0]
    assert deployer == RoleView(
        name="deployer",
        description="deploys",
        namespaces=("staging", "ci-*"),
        default_ttl=900,
        max_ttl=1800,  # capped by the ci grant
        mode="token-request",
        revocable=True,
        cluster="dev",
    )
    assert (views[1].default_ttl, views[1].max_ttl) == (None, None)
    assert [v.name for v in POLICY.usable_roles(ALICE)] == sorted(r["name"] for r in ROLES)
    assert POLICY.usable_roles(NOBODY) == []
    bob = POLICY.usable_roles(caller("bob", "ops"))
    assert [(v.name, v.default_ttl, v.max_ttl) for v in bob] == [("single", 3600, 3 * 3600)]


def test_duplicate_roles_rejected_by_policy() -> None:
    role = RoleConfig.model_validate({**ROLES[0], "cluster": "dev"})
    with pytest.raises(ValueError):
        policy_of([role, role], [])


def test_many_roles_and_grants() -> None:
    # 10,000 roles and 10,000 grants: indexes make each decision touch only the caller's own grants.
    roles = [
        RoleConfig.model_validate(
            {"name": f"r{i}", "cluster": "dev", "service_account": "sa", "namespaces": [f"team-{i}-*"]}
        )
        for i in range(10_000)
    ]
    grants = [
        GrantConfig.model_validate({"name": f"g{i}", "groups": [f"team-{i}"], "roles": [f"r{i}"]})
        for i in range(10_000)
    ]
    policy = policy_of(roles, grants)
    for i in range(0, 10_000, 7):
        assert decide(caller("u", f"team-{i}"), f"r{i}", f"team-{i}-x", policy=policy).grant_name == f"g{i}"
        denied(403, caller("u", f"team-{i}"), f"r{(i + 1) % 10_000}", f"team-{i}-x", policy=policy)
    assert [v.name for v in policy.usable_roles(caller("u", "team-5", "team-9"))] == ["r5", "r9"]


# -- properties -------------------------------------------------------------------------------------------------

NAMESPACES = ["staging", "ci-1", "ci-", "only", "legacy-ci", "team-a", "prod", "kube-system", "Bad", ""]
CALLERS = [CI, ALICE, BOB, NOBODY, caller("bob", "ops"), caller("carol"), caller("x", "ci", "ops")]
ROLE_NAMES = [r["name"] for r in ROLES] + ["nope", ""]


def check_grant(policy: Policy, who: Caller, grant: Grant, asked_ttl: int | None) -> None:
    role = grant.role
    assert NamespaceMatcher(role.namespaces).matches(grant.namespace)
    if role.mode == "legacy-secret":
        assert (grant.ttl_seconds, grant.request_seconds, grant.revoke_after_seconds) == (0, 0, None)
        return
    assert 1 <= grant.ttl_seconds <= role.max_ttl
    if asked_ttl is not None:
        assert grant.ttl_seconds == asked_ttl  # refused, never clamped
    assert grant.request_seconds == max(grant.ttl_seconds, 600)
    if grant.ttl_seconds < 600:
        assert role.revocable
        assert grant.revoke_after_seconds == grant.ttl_seconds
    else:
        assert grant.revoke_after_seconds is None
    assert set(grant.audiences) <= set(role.default_audiences) | set(role.allowed_audiences)


@given(
    who=st.sampled_from(CALLERS),
    role=st.one_of(st.sampled_from(ROLE_NAMES), st.text(max_size=10)),
    namespace=st.one_of(st.none(), st.sampled_from(NAMESPACES), st.text(max_size=10)),
    ttl=st.one_of(st.none(), st.integers(min_value=-10, max_value=20_000), st.integers()),
    audiences=st.one_of(st.none(), st.lists(st.sampled_from(["vault", "api", "x", ""]), max_size=3)),
    labels=st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["platform", "prod"]))
    ),
)
def test_decide_only_raises_broker_errors(
    who: Caller,
    role: str,
    namespace: str | None,
    ttl: int | None,
    audiences: list[str] | None,
    labels: dict[str, str] | None,
) -> None:
    try:
        grant = decide(who, role, namespace, ttl, audiences, labels)
    except BrokerError as err:
        assert err.status in (403, 422, 500)
        assert err.reason
        if role not in {v.name for v in POLICY.usable_roles(who)}:
            assert err.status == 403
            assert err.detail.startswith("not allowed to use role ")
        return
    check_grant(POLICY, who, grant, ttl)


@st.composite
def random_policy(draw: st.DrawFn) -> tuple[Policy, list[RoleConfig], list[GrantConfig]]:
    roles: list[RoleConfig] = []
    for i in range(draw(st.integers(min_value=1, max_value=4))):
        modes: list[Mode] = ["token-request", "legacy-secret"]
        mode = draw(st.sampled_from(modes))
        revocable = mode == "token-request" and draw(st.booleans())
        floor = 1 if revocable else 600
        max_ttl = draw(st.integers(min_value=floor, max_value=10 * 3600))
        default_ttl = draw(st.integers(min_value=floor, max_value=max_ttl))
        roles.append(
            RoleConfig(
                name=f"r{i}",
                cluster="dev",
                service_account="sa",
                namespaces=tuple(
                    draw(st.lists(st.sampled_from(["a", "b", "c-*", "*"]), min_size=1, max_size=2))
                ),
                default_ttl=default_ttl,
                max_ttl=max_ttl,
                mode=mode,
                revocable=revocable,
            )
        )
    grants = [
        GrantConfig(
            name=f"g{j}",
            users=tuple(draw(st.lists(st.sampled_from(["u1", "u2"]), max_size=1))),
            groups=tuple(draw(st.lists(st.sampled_from(["g1", "g2"]), min_size=1, max_size=2))),
            roles=tuple(
                draw(st.lists(st.sampled_from([r.name for r in roles] + ["*"]), min_size=1, max_size=2))
            ),
            namespaces=tuple(
                draw(st.lists(st.sampled_from(["a", "b", "c-1", "c-*", "*"]), min_size=1, max_size=2))
            ),
            max_ttl=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=20 * 3600))),
        )
        for j in range(draw(st.integers(min_value=0, max_value=5)))
    ]
    return policy_of(roles, grants), roles, grants


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    setup=random_policy(),
    who=st.builds(
        Caller,
        user=st.sampled_from(["u1", "u2", "u3"]),
        groups=st.lists(st.sampled_from(["g1", "g2", "g3"]), max_size=2).map(tuple),
        method=st.just("api-key"),
    ),
    role=st.sampled_from(["r0", "r1", "r2", "r3", "r9"]),
    namespace=st.sampled_from([None, "a", "b", "c-1", "c-2", "d"]),
    ttl=st.one_of(st.none(), st.integers(min_value=1, max_value=12 * 3600)),
)
def test_granted_ttl_never_exceeds_an_applicable_cap(
    setup: tuple[Policy, list[RoleConfig], list[GrantConfig]],
    who: Caller,
    role: str,
    namespace: str | None,
    ttl: int | None,
) -> None:
    policy, _roles, grants = setup
    try:
        grant = policy.decide(who, role, namespace, ttl, None, None)
    except BrokerError as err:
        assert err.status in (403, 422)
        return
    check_grant(policy, who, grant, ttl)
    chosen = next(g for g in grants if g.name == grant.grant_name)
    assert who.user in chosen.users or set(who.groups) & set(chosen.groups)
    assert role in chosen.roles or "*" in chosen.roles
    assert NamespaceMatcher(chosen.namespaces).matches(grant.namespace)
    if grant.role.mode == "token-request":
        if chosen.max_ttl is not None:
            assert grant.ttl_seconds <= chosen.max_ttl
        if ttl is None:
            assert grant.ttl_seconds <= grant.role.default_ttl
