"""OIDC callers against a real loopback issuer: discovery, key rotation, an issuer that is down or hangs, the
claims that become the caller, and bound-claim grants end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from oidc_issuer import (
    GRANTS,
    ROLES,
    Clock,
    Edge,
    LoopbackIssuer,
    oidc_issuer,
    policy_from,
    serve_edge,
)

from broker._kits.pki import CertificateAuthority
from broker.callers import CallerRequest, OidcAuthenticator, OidcSettings
from broker.domain.errors import BrokerError


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate("oidc-test-ca")


@pytest.fixture
async def idp(ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[LoopbackIssuer]:
    issuer = await LoopbackIssuer(ca, tmp_path / "idp").start()
    yield issuer
    await issuer.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def edge(idp: LoopbackIssuer, clock: Clock) -> AsyncIterator[Edge]:
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock, timeout=1.0)])
    async with serve_edge([authenticator], policy_from(ROLES, GRANTS)) as served:
        yield served


def bearer(token: str) -> CallerRequest:
    return CallerRequest(headers={"Authorization": f"Bearer {token}"})


# -- keys -------------------------------------------------------------------------------------------------------


async def test_discovery_is_read_once_and_the_key_set_is_cached(edge: Edge, idp: LoopbackIssuer) -> None:
    for _ in range(3):
        status, _, body = await edge.token(idp.sign())
        assert status == 201, body
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_a_configured_jwks_uri_skips_discovery(idp: LoopbackIssuer, clock: Clock) -> None:
    issuer = oidc_issuer(idp, clock, jwks_uri=f"{idp.url}/jwks")
    caller = await OidcAuthenticator([issuer]).authenticate(bearer(idp.sign()))
    assert caller is not None and caller.method == "oidc"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (0, 1)


async def test_the_key_set_lives_for_its_max_age(idp: LoopbackIssuer, clock: Clock) -> None:
    idp.max_age = 300
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock)])
    await authenticator.authenticate(bearer(idp.sign()))
    clock.now += 299
    await authenticator.authenticate(bearer(idp.sign()))
    assert idp.jwks_fetches == 1
    clock.now += 2
    await authenticator.authenticate(bearer(idp.sign()))
    assert idp.jwks_fetches == 2


async def test_a_rotated_key_is_picked_up_by_a_refetch(edge: Edge, idp: LoopbackIssuer, clock: Clock) -> None:
    old = idp.key("RS256")
    status, _, _ = await edge.token(idp.sign())
    assert status == 201 and idp.jwks_fetches == 1

    new = idp.rotate("ES256")
    clock.now += 11  # past the refetch cooldown, well inside the cached key set's lifetime
    status, _, body = await edge.token(idp.sign(key=new))
    assert status == 201, body
    assert idp.jwks_fetches == 2
    # the provider dropped the old key: tokens it signed stop working
    status, _, _ = await edge.token(idp.sign(key=old))
    assert status == 401


async def test_a_key_set_that_answers_503_is_a_503_not_a_401(edge: Edge, idp: LoopbackIssuer) -> None:
    idp.jwks_status = 503
    status, headers, body = await edge.token(idp.sign())
    assert status == 503, body
    assert int(headers["Retry-After"]) >= 1
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "WWW-Authenticate" not in headers
    assert edge.issuer.requests == []
    # nothing failed is remembered: the next request after recovery goes through
    idp.jwks_status = 200
    status, _, body = await edge.token(idp.sign())
    assert status == 201, body


async def test_a_key_set_that_never_answers_is_a_503_not_a_hang(edge: Edge, idp: LoopbackIssuer) -> None:
    idp.hang = True
    async with asyncio.timeout(10):
        status, headers, body = await edge.token(idp.sign())
    assert status == 503, body
    assert "Retry-After" in headers
    assert edge.issuer.requests == []


async def test_an_unreachable_issuer_is_a_503(edge: Edge, idp: LoopbackIssuer) -> None:
    token = idp.sign()
    await idp.stop()
    status, headers, body = await edge.token(token)
    assert status == 503, body
    assert "Retry-After" in headers
    assert edge.issuer.requests == []


async def test_a_key_set_404_is_a_502(edge: Edge, idp: LoopbackIssuer) -> None:
    idp.jwks_status = 404
    status, _, body = await edge.token(idp.sign())
    assert status == 502, body


async def test_an_untrusted_issuer_is_left_to_the_next_authenticator_when_asked(
    idp: LoopbackIssuer, clock: Clock
) -> None:
    other = idp.sign(iss="https://kubernetes.default.svc.cluster.local")
    deferring = OidcAuthenticator([oidc_issuer(idp, clock)], defer_unknown_issuers=True)
    assert await deferring.authenticate(bearer(other)) is None
    # a token of a trusted issuer is never deferred, even when it fails
    with pytest.raises(BrokerError) as err:
        await deferring.authenticate(bearer(idp.sign(aud="elsewhere")))
    assert err.value.status == 401
    strict = OidcAuthenticator([oidc_issuer(idp, clock)])
    with pytest.raises(BrokerError) as err:
        await strict.authenticate(bearer(other))
    assert err.value.status == 401
    assert idp.jwks_fetches == 1


async def test_requests_without_a_jwt_are_not_ours(idp: LoopbackIssuer, clock: Clock) -> None:
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock)])
    assert await authenticator.authenticate(CallerRequest()) is None
    assert await authenticator.authenticate(bearer("tb_opaque_api_key")) is None
    assert await authenticator.authenticate(CallerRequest(headers={"Authorization": "Basic dTpw"})) is None
    assert idp.discovery_fetches == 0


# -- who the caller is ------------------------------------------------------------------------------------------


async def test_claims_become_the_caller(idp: LoopbackIssuer, clock: Clock) -> None:
    issuer = oidc_issuer(
        idp,
        clock,
        username_claim="user_login",
        username_prefix="gl:",
        groups_claim="groups",
        groups_prefix="gl:",
    )
    caller = await OidcAuthenticator([issuer]).authenticate(bearer(idp.sign(user_login="alice")))
    assert caller is not None
    assert caller.user == "gl:alice"
    assert caller.groups == ("gitlab", "gl:platform", "gl:release")
    assert caller.claims["ref_protected"] is True

    # a single string is one group; an absent claim is none
    caller = await OidcAuthenticator([issuer]).authenticate(bearer(idp.sign(user_login="bob", groups="ops")))
    assert caller is not None and caller.groups == ("gitlab", "gl:ops")
    caller = await OidcAuthenticator([issuer]).authenticate(bearer(idp.sign(user_login="bob", groups=None)))
    assert caller is not None and caller.groups == ("gitlab",)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"user_login": None}, "no user_login claim"),
        ({"user_login": 42}, "no user_login claim"),
        ({"user_login": "alice", "groups": {"a": 1}}, "not a list of group names"),
        ({"user_login": "alice", "groups": ["ok", 3]}, "not a list of group names"),
    ],
)
async def test_unusable_identity_claims_are_401(
    idp: LoopbackIssuer, clock: Clock, claims: dict[str, object], why: str
) -> None:
    issuer = oidc_issuer(idp, clock, username_claim="user_login", groups_claim="groups")
    with pytest.raises(BrokerError) as err:
        await OidcAuthenticator([issuer]).authenticate(bearer(idp.sign(**claims)))
    assert err.value.status == 401 and why in err.value.detail


async def test_an_email_is_a_user_name_only_when_verified(idp: LoopbackIssuer, clock: Clock) -> None:
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock, username_claim="email", username_prefix="")])
    caller = await authenticator.authenticate(bearer(idp.sign(email="a@example.com", email_verified=True)))
    assert caller is not None and caller.user == "a@example.com"
    with pytest.raises(BrokerError) as err:
        await authenticator.authenticate(bearer(idp.sign(email="a@example.com", email_verified=False)))
    assert err.value.status == 401


async def test_only_the_issuers_algorithms_are_accepted(idp: LoopbackIssuer, clock: Clock) -> None:
    authenticator = OidcAuthenticator([oidc_issuer(idp, clock, algorithms=("RS256",))])
    assert await authenticator.authenticate(bearer(idp.sign(key=idp.key("RS256")))) is not None
    with pytest.raises(BrokerError) as err:
        await authenticator.authenticate(bearer(idp.sign(key=idp.key("ES256"))))
    assert err.value.status == 401 and "ES256" in err.value.reason


async def test_whoami_shows_the_claims_never_the_token(edge: Edge, idp: LoopbackIssuer) -> None:
    token = idp.sign()
    status, _, body = await edge.call("GET", "/v1/whoami", token)
    assert status == 200, body
    assert body["method"] == "oidc"
    assert body["user"] == "gitlab:project_path:platform/app:ref_type:branch:ref:main"
    assert body["groups"] == ["gitlab"]
    assert body["roles"] == ["deployer", "releaser"]
    assert body["claims"]["project_path"] == "platform/app"
    assert token not in json.dumps(body)


# -- bound claims, end to end -----------------------------------------------------------------------------------


async def test_bound_claims_decide_over_http(
    edge: Edge, idp: LoopbackIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, body = await edge.token(idp.sign(project_path="platform/web"), role="deployer")
    assert status == 201, body
    status, _, body = await edge.token(idp.sign(), role="releaser", namespace="prod")
    assert status == 201, body

    with caplog.at_level("INFO", logger="broker.http.problem"):
        status, _, other = await edge.token(idp.sign(project_path="other/x"), role="deployer")
        status2, _, unprotected = await edge.token(
            idp.sign(ref_protected=False), role="releaser", namespace="prod"
        )
    assert (status, status2) == (403, 403)
    # the caller learns nothing about which grants exist; the log (audit reason) says exactly why
    assert other["detail"] == 'not allowed to use role "deployer"'
    assert "platform" not in json.dumps(other) and "ci-platform" not in json.dumps(other)
    assert "grant ci-platform: claim project_path 'other/x' does not match 'platform/*'" in caplog.text
    assert "grant release-protected: claim ref_protected true does not match 'true'" not in caplog.text
    assert "release-protected: claim ref_protected false does not match 'true'" in caplog.text
    assert unprotected["detail"] == 'not allowed to use role "releaser"'

    status, _, body = await edge.call("GET", "/v1/whoami", idp.sign(project_path="other/x"))
    assert status == 200 and body["roles"] == []


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_settings_refuse_symmetric_or_no_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithms must be among"):
        OidcSettings(issuer="https://ci.example.com", audience="a", algorithms=algorithms)
