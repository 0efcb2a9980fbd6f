"""Small parsers: Warning headers, Cache-Control, unverified decoding, service account user names."""

from __future__ import annotations

import pytest
from support.signing import bound_claims, rsa_key

from broker._kits.jwks import parse_max_age
from broker._kits.jwt import decode_unverified
from broker.kube import parse_subject, parse_warnings
from broker.kube.legacy import legacy_label_value
from broker.kube.objects import random_name


def test_warning_header_of_a_capped_token_request() -> None:
    value = '299 - "requested expiration of 7200 seconds shortened to 3600 seconds"'
    assert parse_warnings([value]) == ("requested expiration of 7200 seconds shortened to 3600 seconds",)


def test_several_warnings_escapes_and_dates() -> None:
    values = [
        '299 - "first", 299 - "a \\"quoted\\" word"',
        '299 kube-apiserver "dated" "Sat, 01 Jan 2000 00:00:00 GMT"',
    ]
    assert parse_warnings(values) == ("first", 'a "quoted" word', "dated")
    assert parse_warnings(["garbage"]) == ()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("public, max-age=3600", 3600.0),
        ("max-age=60", 60.0),
        ('max-age="10"', 10.0),
        ("no-store", 0.0),
        ("private, no-cache", 0.0),
        ("public", None),
        (None, None),
    ],
)
def test_max_age(header: str | None, expected: float | None) -> None:
    assert parse_max_age(header) == expected


def test_decode_unverified() -> None:
    claims = bound_claims()
    decoded = decode_unverified(rsa_key().sign(claims))
    assert decoded.header["alg"] == "RS256" and decoded.claims == claims
    for bad in ("", "a.b", "a.b.c", "e30.bm90IGpzb24.x"):
        with pytest.raises(ValueError):
            decode_unverified(bad)


def test_parse_subject() -> None:
    assert parse_subject("system:serviceaccount:ci:deployer") == ("ci", "deployer")
    for bad in (
        "system:serviceaccount:ci",
        "user:ci:x",
        "system:serviceaccount::x",
        "system:serviceaccount:a:b:c",
    ):
        with pytest.raises(ValueError):
            parse_subject(bad)


def test_generated_names_are_valid_and_distinct() -> None:
    names = {random_name("token-broker-") for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith("token-broker-") and len(n) == 23 for n in names)
    assert len(random_name("x" * 300)) == 253


def test_legacy_label_value_fits_a_label() -> None:
    assert legacy_label_value("jenkins") == "jenkins"
    long = legacy_label_value("a" * 100)
    assert len(long) <= 63 and long.startswith("sha256-")
