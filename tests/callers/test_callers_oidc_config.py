"""config.toml for CI callers: [[auth.oidc]], [auth.kubernetes], bound claims and rate limits, and what the
loader refuses (HS*/none, plain-http issuers, claims with no OIDC issuer, an ambiguous review cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.app.wiring import authenticators_from
from broker.callers import ApiKeyAuthenticator, MtlsAuthenticator, OidcAuthenticator, TokenReviewAuthenticator
from broker.settings import BrokerConfig, ConfigError, parse_config

BASE = """
[server]
tls_cert = "pki/server.crt"
tls_key = "pki/server.key"
client_ca = "pki/ca.crt"

[[clusters]]
name = "dev"
in_cluster = true

[[roles]]
name = "deployer"
service_account = "deployer"
namespaces = ["ci-*"]
"""

OIDC = """
[[auth.oidc]]
issuer = "https://gitlab.example.com"
audience = "token-broker"
username_prefix = "gitlab:"
groups = ["gitlab"]
"""

FULL = (
    BASE
    + """
[[grants]]
name = "ci-platform"
groups = ["gitlab"]
roles = ["deployer"]
rate_limit = { per_minute = 30, burst = 5 }

[grants.claims]
project_path = "platform/*"
ref_protected = true
environment = ["staging", "review/*"]

[auth.rate_limit]
per_minute = 120
burst = 20

[[auth.oidc]]
issuer = "https://gitlab.example.com"
audience = "token-broker"
jwks_uri = "https://gitlab.example.com/oauth/discovery/keys"
ca_file = "pki/gitlab-ca.crt"
algorithms = ["RS256"]
leeway_seconds = 30
max_token_age = "15m"
username_claim = "sub"
username_prefix = "gitlab:"
groups_claim = "groups"
groups_prefix = "gitlab:"
groups = ["gitlab"]

[[auth.oidc]]
issuer = "https://token.actions.githubusercontent.com"
audience = "https://broker.example.com"

[auth.kubernetes]
enabled = true
audiences = ["token-broker"]
cache_seconds = 5
"""
)


def load(text: str) -> BrokerConfig:
    return parse_config(text, Path("/etc/token-broker/config.toml"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(text)
    return [f"{p.where}: {p.message}" for p in err.value.problems]


def test_a_full_ci_config_loads() -> None:
    cfg = load(FULL)
    gitlab, github = cfg.auth.oidc
    assert gitlab.algorithms == ("RS256",)
    assert gitlab.max_token_age == 900 and gitlab.leeway_seconds == 30
    assert gitlab.ca_file == Path("/etc/token-broker/pki/gitlab-ca.crt")
    assert gitlab.effective_username_prefix == "gitlab:"
    # kube-apiserver's default: the issuer URL and '#', so OIDC users never collide with certificate users
    assert github.effective_username_prefix == "https://token.actions.githubusercontent.com#"
    assert github.algorithms == ("RS256", "ES256") and github.max_token_age == 3600
    grant = cfg.grants[0]
    assert dict(grant.claims) == {
        "project_path": ("platform/*",),
        "ref_protected": ("true",),
        "environment": ("staging", "review/*"),
    }
    assert grant.rate_limit is not None and (grant.rate_limit.per_minute, grant.rate_limit.burst) == (30, 5)
    assert (cfg.auth.rate_limit.per_minute, cfg.auth.rate_limit.burst) == (120, 20)
    assert cfg.auth.kubernetes.enabled and cfg.token_review_cluster == "dev"
    assert cfg.auth.kubernetes.cache_seconds == 5


def test_defaults() -> None:
    cfg = load(BASE)
    assert cfg.auth.oidc == () and not cfg.auth.kubernetes.enabled
    assert cfg.auth.kubernetes.audiences == ("token-broker",)
    assert cfg.auth.kubernetes.cache_seconds == 10
    assert (cfg.auth.rate_limit.per_minute, cfg.auth.rate_limit.burst) == (600, 100)


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "None"])
def test_symmetric_and_unsigned_algorithms_are_refused_at_load(alg: str) -> None:
    found = problems(BASE + OIDC + f'algorithms = ["RS256", "{alg}"]\n')
    assert found == [
        f"auth.oidc[0].algorithms[1]: {alg!r} is refused: only asymmetric signatures are accepted "
        "(RS256, RS384, RS512, ES256, ES384, ES512)"
    ]


def test_unknown_algorithms_are_refused() -> None:
    assert problems(BASE + OIDC + 'algorithms = ["PS256"]\n')[0].startswith(
        "auth.oidc[0].algorithms[0]: 'PS256'"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("issuer", "http://gitlab.example.com"), ("jwks_uri", "http://gitlab.example.com/keys")],
)
def test_plain_http_is_only_for_loopback(key: str, value: str) -> None:
    text = BASE + OIDC.replace('issuer = "https://gitlab.example.com"\n', "") + f'{key} = "{value}"\n'
    if key == "jwks_uri":
        text += 'issuer = "https://gitlab.example.com"\n'
    assert any(p.startswith(f"auth.oidc[0].{key}: ") and "https" in p for p in problems(text))
    ok = BASE + OIDC.replace("https://gitlab.example.com", "http://127.0.0.1:8080")
    assert load(ok).auth.oidc[0].issuer == "http://127.0.0.1:8080"


def test_audience_is_required_and_issuers_are_unique() -> None:
    assert problems(BASE + OIDC.replace('audience = "token-broker"\n', "")) == [
        "auth.oidc[0].audience: required key is missing"
    ]
    assert problems(BASE + OIDC + OIDC) == [
        "auth.oidc[1].issuer: issuer 'https://gitlab.example.com' is configured twice"
    ]


def test_bound_claims_need_an_oidc_issuer() -> None:
    text = BASE + '[[grants]]\ngroups = ["ci"]\nroles = ["deployer"]\n[grants.claims]\nproject_path = "x/*"\n'
    assert problems(text) == ["grants[0].claims: bound claims apply only to OIDC callers; add [[auth.oidc]]"]
    assert load(text + OIDC).grants[0].claims["project_path"] == ("x/*",)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ('project_path = ""', "must not be empty"),
        ("project_path = []", "at least one accepted value"),
        ("project_path = { a = 1 }", "must be a string"),
        ("project_path = 1.5", "must be a string"),
    ],
)
def test_bad_bound_claim_values(claims: str, message: str) -> None:
    text = BASE + OIDC + f'[[grants]]\ngroups = ["ci"]\nroles = ["deployer"]\n[grants.claims]\n{claims}\n'
    found = problems(text)
    assert len(found) == 1 and found[0].startswith("grants[0].claims") and message in found[0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("per_minute = 0", "per_minute: must be greater than 0"),
        ("burst = 0", "burst: must be greater than or equal to 1"),
        ("rate = 5", "rate: unknown key"),
    ],
)
def test_bad_rate_limits(table: str, message: str) -> None:
    found = problems(BASE + f"[auth.rate_limit]\n{table}\n")
    assert len(found) == 1 and message in found[0] and found[0].startswith("auth.rate_limit.")


def test_the_review_cluster_must_be_named_when_there_are_several() -> None:
    two = BASE + '[[clusters]]\nname = "prod"\nin_cluster = true\n'
    two = two.replace('namespaces = ["ci-*"]', 'namespaces = ["ci-*"]\ncluster = "dev"')
    assert problems(two + "[auth.kubernetes]\nenabled = true\n") == [
        "auth.kubernetes.cluster: required: 2 clusters are configured"
    ]
    assert problems(two + '[auth.kubernetes]\nenabled = true\ncluster = "qa"\n') == [
        "auth.kubernetes.cluster: unknown cluster 'qa'"
    ]
    assert load(two + '[auth.kubernetes]\nenabled = true\ncluster = "prod"\n').token_review_cluster == "prod"


def test_oidc_or_tokenreview_alone_is_enough_authentication() -> None:
    no_mtls = BASE.replace('client_ca = "pki/ca.crt"\n', "")
    assert problems(no_mtls)[0].startswith("auth: no authentication method")
    assert load(no_mtls + OIDC).auth.oidc
    assert load(no_mtls + "[auth.kubernetes]\nenabled = true\n").auth.kubernetes.enabled


def test_the_chain_is_mtls_api_key_oidc_tokenreview() -> None:
    text = FULL.replace('ca_file = "pki/gitlab-ca.crt"\n', "") + (
        '[[auth.api_keys]]\nname = "bot"\nsha256 = "' + "a" * 64 + '"\n'
    )
    chain = authenticators_from(load(text), dict)
    assert [type(a) for a in chain] == [
        MtlsAuthenticator,
        ApiKeyAuthenticator,
        OidcAuthenticator,
        TokenReviewAuthenticator,
    ]
    oidc = chain[2]
    assert isinstance(oidc, OidcAuthenticator)
    assert [i.issuer for i in oidc.issuers] == [
        "https://gitlab.example.com",
        "https://token.actions.githubusercontent.com",
    ]


def test_an_unreadable_issuer_ca_is_a_value_error(tmp_path: Path) -> None:
    cfg = load(FULL)
    with pytest.raises(ValueError, match="cannot load the OIDC issuer CA bundle"):
        authenticators_from(cfg, dict)
