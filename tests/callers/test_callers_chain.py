"""The chain: order, the first refusal decides, 401 when nobody recognises a credential, atomic swap."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from broker._kits.pki import CertificateAuthority
from broker.callers import ApiKeyAuthenticator, AuthenticatorChain, CallerRequest, MtlsAuthenticator
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller

KEY = "tb_build_0123456789abcdef"


class Recording:
    """A test authenticator of our own Authenticator protocol: answers `result` and counts calls."""

    def __init__(self, result: Caller | None, gate: asyncio.Event | None = None) -> None:
        self.result = result
        self.calls = 0
        self.gate = gate
        self.entered = asyncio.Event()

    async def authenticate(self, request: CallerRequest) -> Caller | None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.result


def real_chain() -> AuthenticatorChain:
    keys = ApiKeyAuthenticator([("build", hashlib.sha256(KEY.encode()).hexdigest(), ["ci"])])
    return AuthenticatorChain([MtlsAuthenticator(), keys])


def cert_der(cn: str, orgs: list[str]) -> bytes:
    return CertificateAuthority.generate("ca").issue_client_cert(cn, orgs).cert.public_bytes(Encoding.DER)


async def test_first_authenticator_that_recognises_wins() -> None:
    request = CallerRequest(peer_cert_der=cert_der("alice", ["ops"]), headers={"X-API-Key": KEY})
    assert await real_chain().authenticate(request) == Caller("alice", ("ops",), "mtls")


async def test_falls_through_to_api_key() -> None:
    caller = await real_chain().authenticate(CallerRequest(headers={"X-API-Key": KEY}))
    assert caller == Caller("build", ("ci",), "api-key")


async def test_no_credential_is_401_with_a_challenge() -> None:
    chain = real_chain()
    with pytest.raises(BrokerError) as info:
        await chain.authenticate(CallerRequest(headers={"Accept": "application/json"}))
    assert info.value.status == 401
    assert chain.challenge == 'Bearer realm="token-broker"'
    assert AuthenticatorChain([], realm="x").challenge == 'Bearer realm="x"'


async def test_a_refusal_decides_and_later_authenticators_are_not_asked() -> None:
    later = Recording(Caller("mallory", (), "test"))
    keys = ApiKeyAuthenticator([("build", hashlib.sha256(KEY.encode()).hexdigest(), [])])
    chain = AuthenticatorChain([MtlsAuthenticator(), keys, later])
    with pytest.raises(BrokerError) as info:
        await chain.authenticate(CallerRequest(headers={"X-API-Key": "wrong"}))
    assert info.value.status == 401
    assert later.calls == 0


async def test_jwt_bearer_passes_the_api_key_authenticator_by() -> None:
    later = Recording(Caller("oidc-user", (), "oidc"))
    keys = ApiKeyAuthenticator([("build", hashlib.sha256(KEY.encode()).hexdigest(), [])])
    chain = AuthenticatorChain([keys, later])
    caller = await chain.authenticate(CallerRequest(headers={"Authorization": "Bearer aaa.bbb.ccc"}))
    assert caller == Caller("oidc-user", (), "oidc")


async def test_replace_is_atomic_for_requests_in_flight() -> None:
    gate = asyncio.Event()
    slow = Recording(None, gate)
    old = Recording(Caller("old", (), "test"))
    new = Recording(Caller("new", (), "test"))
    chain = AuthenticatorChain([slow, old])
    in_flight = asyncio.create_task(chain.authenticate(CallerRequest()))
    await asyncio.wait_for(slow.entered.wait(), timeout=5)
    chain.replace([new])
    gate.set()
    assert (await asyncio.wait_for(in_flight, timeout=5)).user == "old"
    assert (await chain.authenticate(CallerRequest())).user == "new"
    assert chain.authenticators == (new,)


def auth_failures(method: str, reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "token_broker_auth_failures_total", {"method": method, "reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("request_", "method", "detail"),
    [
        (CallerRequest(headers={"X-API-Key": KEY}), "api_key", "this broker accepts no API keys"),
        (
            CallerRequest(headers={"Authorization": f"Bearer {KEY}"}),
            "api_key",
            "this broker accepts no API keys",
        ),
        (
            CallerRequest(headers={"Authorization": "Bearer a.b.c"}),
            "none",
            "this broker accepts no bearer tokens",
        ),
    ],
)
async def test_a_credential_of_a_kind_not_configured_is_named_and_counted_as_such(
    request_: CallerRequest, method: str, detail: str
) -> None:
    chain = AuthenticatorChain([MtlsAuthenticator()])  # no API keys, no OIDC, no TokenReview configured
    before = auth_failures(method, "not_accepted")
    with pytest.raises(BrokerError) as refused:
        await chain.authenticate(request_)
    assert refused.value.status == 401 and refused.value.detail == detail
    assert auth_failures(method, "not_accepted") == before + 1


async def test_nothing_presented_is_missing() -> None:
    before = auth_failures("none", "missing")
    with pytest.raises(BrokerError, match="no credential"):
        await AuthenticatorChain([MtlsAuthenticator()]).authenticate(CallerRequest())
    assert auth_failures("none", "missing") == before + 1
