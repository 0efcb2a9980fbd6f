from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker._kits.labelselector import Requirement, parse_label_selector
from broker._kits.names import (
    NamespaceMatcher,
    is_dns1123_label,
    is_qualified_name,
    namespace_pattern_problem,
)

LABELS = {"team": "platform", "env": "staging", "example.com/tier": "web", "empty": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("team=platform", True),
        ("team==platform", True),
        ("team = platform", True),
        ("team=other", False),
        ("missing=x", False),
        ("team!=other", True),
        ("team!=platform", False),
        ("missing!=x", True),  # != matches objects without the key, as in Kubernetes
        ("env in (staging, prod)", True),
        ("env in (prod)", False),
        ("missing in (a)", False),
        ("env notin (prod)", True),
        ("env notin (staging,prod)", False),
        ("missing notin (a)", True),
        ("team", True),
        ("missing", False),
        ("!missing", True),
        ("!team", False),
        ("! team", False),
        ("example.com/tier=web", True),
        ("empty=", True),
        ("team=platform,env=staging", True),
        ("team=platform, env=prod", False),
        ("team in (platform),!legacy,env", True),
    ],
)
def test_matching(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


def test_parsed_form() -> None:
    sel = parse_label_selector("a=b,c notin (d,e),!f")
    assert sel.requirements == (
        Requirement("a", "=", frozenset({"b"})),
        Requirement("c", "notin", frozenset({"d", "e"})),
        Requirement("f", "!"),
    )


@pytest.mark.parametrize(
    "selector",
    [
        "a in ()",
        "a in (b",
        "a in b",
        "a > 3",
        "a < 3",
        "=b",
        "a=b=c",
        "a b",
        "a=b,",
        ",a",
        "a=-b",
        "bad key=x",
        "-a=b",
        "a=" + "x" * 64,
        "!",
        "a notin",
    ],
)
def test_invalid(selector: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(selector)


@given(st.text(max_size=40))
def test_parse_only_raises_value_error(text: str) -> None:
    try:
        sel = parse_label_selector(text)
    except ValueError:
        return
    sel.matches(LABELS)


def test_names() -> None:
    assert is_dns1123_label("ci-1")
    assert not is_dns1123_label("Ci")
    assert not is_dns1123_label("a" * 64)
    assert is_qualified_name("example.com/owner")
    assert not is_qualified_name("Example.com/owner")
    assert not is_qualified_name("/owner")
    assert namespace_pattern_problem("ci-*") is None
    assert namespace_pattern_problem("*") is None
    assert namespace_pattern_problem("team-?") is None
    assert namespace_pattern_problem("ci-*-") is not None
    assert namespace_pattern_problem("a" * 63 + "*") is None
    assert namespace_pattern_problem("a" * 64 + "*") is not None


@pytest.mark.parametrize(
    ("patterns", "namespace", "matches"),
    [
        (("*",), "kube-system", True),
        (("ci-*",), "ci-", True),
        (("ci-*",), "ci-123", True),
        (("ci-*",), "xci-1", False),
        (("ci-?",), "ci-1", True),
        (("ci-?",), "ci-12", False),
        (("staging", "ci-*"), "staging", True),
        (("staging", "ci-*"), "stagingx", False),
        (("*-prod",), "web-prod", True),
        (("a.b",), "axb", False),  # "." is literal, not a regex wildcard
    ],
)
def test_namespace_matcher(patterns: tuple[str, ...], namespace: str, matches: bool) -> None:
    assert NamespaceMatcher(patterns).matches(namespace) is matches
