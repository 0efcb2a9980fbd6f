"""The simulator's audit trail: who did what, with the credential id a bound token carries (no secrets)."""

from __future__ import annotations

import base64
import json

import pytest
from kubesim_support import admin, call, client

from kubesim import KubeSim

pytestmark = pytest.mark.kubectl


async def test_requests_are_audited_with_the_token_credential_id(kubesim: KubeSim) -> None:
    token = (await admin(kubesim, "create", "token", "default")).stdout.strip()
    payload = token.split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    async with client(kubesim, user=None, token=token) as http:
        code, _, _ = await call(http, "GET", "/api/v1/namespaces/default/secrets")
    assert code == 403
    event = kubesim.audit_events[-1]
    assert (event.user, event.verb, event.path, event.code) == (
        "system:serviceaccount:default:default",
        "list",
        "/api/v1/namespaces/default/secrets",
        403,
    )
    assert event.extra["authentication.kubernetes.io/credential-id"] == [f"JTI={jti}"]
    assert token not in repr(kubesim.audit_events)


async def test_failed_authentication_is_audited(kubesim: KubeSim) -> None:
    async with client(kubesim, user=None, token="nope") as http:
        code, _, _ = await call(http, "GET", "/api")
    assert code == 401
    assert (kubesim.audit_events[-1].user, kubesim.audit_events[-1].code) == ("", 401)
