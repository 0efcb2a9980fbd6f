"""API keys: configured as SHA-256 digests, compared in constant time against every key."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

import broker.callers.api_key as api_key_module
from broker.callers import ApiKeyAuthenticator, CallerRequest
from broker.callers.bearer import looks_like_jwt
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller

JENKINS_KEY = "tb_jenkins_3b9f0c6e5a1d4f7e8c2b"
OPS_KEY = "tb_ops_9d8c7b6a5f4e3d2c1b0a"
JWT_SHAPED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def make_authenticator() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        [
            ("jenkins", sha256_hex(JENKINS_KEY), ["ci", "deployers"]),
            ("ops", sha256_hex(OPS_KEY).upper(), []),
        ]
    )


async def test_x_api_key_header() -> None:
    caller = await make_authenticator().authenticate(CallerRequest(headers={"X-API-Key": JENKINS_KEY}))
    assert caller == Caller(user="jenkins", groups=("ci", "deployers"), method="api-key")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_header(scheme: str) -> None:
    request = CallerRequest(headers={"Authorization": f"{scheme} {OPS_KEY}"})
    assert await make_authenticator().authenticate(request) == Caller(user="ops", groups=(), method="api-key")


async def test_header_names_are_case_insensitive() -> None:
    caller = await make_authenticator().authenticate(CallerRequest(headers={"x-api-key": OPS_KEY}))
    assert caller is not None and caller.user == "ops"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "tb_unknown"},
        {"Authorization": "Bearer tb_unknown"},
        {"X-API-Key": JENKINS_KEY + "x"},
        {"X-API-Key": JENKINS_KEY.upper()},
    ],
)
async def test_unknown_key_is_refused_without_echoing_it(headers: dict[str, str]) -> None:
    with pytest.raises(BrokerError) as info:
        await make_authenticator().authenticate(CallerRequest(headers=headers))
    assert info.value.status == 401
    value = next(iter(headers.values())).removeprefix("Bearer ")
    assert value not in str(info.value) and value not in info.value.reason


@pytest.mark.parametrize("headers", [{"X-API-Key": ""}, {"Authorization": "Bearer "}, {"X-API-Key": "   "}])
async def test_empty_key_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(BrokerError) as info:
        await make_authenticator().authenticate(CallerRequest(headers=headers))
    assert info.value.status == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {JWT_SHAPED}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Negotiate abc"},
    ],
)
async def test_other_credentials_are_left_to_other_authenticators(headers: dict[str, str]) -> None:
    assert await make_authenticator().authenticate(CallerRequest(headers=headers)) is None


async def test_x_api_key_wins_over_authorization() -> None:
    request = CallerRequest(headers={"X-API-Key": OPS_KEY, "Authorization": f"Bearer {JENKINS_KEY}"})
    caller = await make_authenticator().authenticate(request)
    assert caller is not None and caller.user == "ops"


def test_jwt_shape() -> None:
    assert looks_like_jwt(JWT_SHAPED)
    assert looks_like_jwt("a.b.")  # an unsecured JWS has an empty signature; still not an API key
    assert not looks_like_jwt(JENKINS_KEY)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")


@pytest.mark.parametrize("presented", [JENKINS_KEY, OPS_KEY, "tb_nobody"])
async def test_every_configured_key_is_compared_whichever_matches(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a spy around the real hmac.compare_digest: the number and length of comparisons must not depend on
    # which key (if any) matched — no early exit
    seen: list[tuple[int, int]] = []

    def counting(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(api_key_module, "compare_digest", counting)
    authenticator = ApiKeyAuthenticator(
        [(f"filler{i}", sha256_hex(f"filler-{i}"), []) for i in range(3)]
        + [("jenkins", sha256_hex(JENKINS_KEY), []), ("ops", sha256_hex(OPS_KEY), [])]
    )
    with contextlib.suppress(BrokerError):
        await authenticator.authenticate(CallerRequest(headers={"X-API-Key": presented}))
    assert seen == [(32, 32)] * 5


@pytest.mark.parametrize(
    "keys",
    [
        [("a", "zz" * 32, [])],
        [("a", "ab" * 31, [])],
        [("", sha256_hex("x"), [])],
        [("a", sha256_hex("x"), []), ("a", sha256_hex("y"), [])],
        [("a", sha256_hex("x"), []), ("b", sha256_hex("x").upper(), [])],
    ],
)
def test_bad_configuration_is_rejected(keys: list[tuple[str, str, list[str]]]) -> None:
    with pytest.raises(ValueError):
        ApiKeyAuthenticator(keys)


@given(
    st.text(min_size=1, max_size=80).filter(lambda s: s.strip() and s.strip() not in (JENKINS_KEY, OPS_KEY))
)
async def test_any_other_key_is_refused(presented: str) -> None:
    try:
        result = await make_authenticator().authenticate(CallerRequest(headers={"X-API-Key": presented}))
    except BrokerError as err:
        assert err.status == 401
    else:
        pytest.fail(f"accepted {result!r}")
