"""The one revocation path: the bound Secret is deleted with its uid as precondition, then the outcome is
recorded — revoked by an operator, expired by the janitor — and a failed deletion records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.journal import JournaledStore
from support.memory_kube import MemoryKube
from usecase_support import CI, CLUSTER, request

from broker.domain.errors import BrokerError, ErrorKind
from broker.domain.identity import Caller
from broker.usecases.access import Visibility
from broker.usecases.issuance import Issuer
from broker.usecases.ports import IssuedToken
from broker.usecases.revocation import Revocation, Revocations

OPS = Caller("ops", ("operators",), "mtls")


def revocations(kube: MemoryKube, store: JournaledStore) -> Revocations:
    revocation = Revocation(store, {CLUSTER: kube.cluster(CLUSTER)})  # type: ignore[arg-type]
    return Revocations(store, revocation, Visibility(lambda: ("operators",)))  # type: ignore[arg-type]


async def issued(issuer: Issuer, kube: MemoryKube) -> IssuedToken:
    token = await issuer.issue(CI, request())
    kube.journal.clear()
    return token


async def test_revoking_deletes_the_secret_with_its_uid_then_records_it(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    token = await issued(issuer, kube)
    [secret] = kube.secrets()
    event = await revocations(kube, store).revoke(OPS, token.token_id, "leaked in a log")
    assert event is not None and event.event == "revoked" and event.revoked_by == "ops"
    name = secret["metadata"]["name"]
    assert kube.journal == [
        "store.get_issuance",
        f"DELETE /api/v1/namespaces/ci/secrets/{name}",
        "store.mark_revoked",
    ]
    assert kube.secrets() == []
    # idempotent: the token is already dead
    assert await revocations(kube, store).revoke(OPS, token.token_id) is None


async def test_a_secret_recreated_under_the_same_name_is_not_deleted(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    token = await issued(issuer, kube)
    [secret] = kube.secrets()
    # someone deleted the Secret (the token is dead) and made another of the same name
    kube.objects[("secrets", "ci", secret["metadata"]["name"])]["metadata"]["uid"] = "someone-elses"
    event = await revocations(kube, store).revoke(OPS, token.token_id)
    assert event is not None and event.event == "revoked"
    assert [s["metadata"]["uid"] for s in kube.secrets()] == ["someone-elses"]


async def test_a_failed_deletion_records_nothing(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    token = await issued(issuer, kube)
    kube.fail_next("DELETE", "", 503)
    with pytest.raises(BrokerError) as err:
        await revocations(kube, store).revoke(OPS, token.token_id)
    assert err.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert "store.mark_revoked" not in kube.journal
    record = await store.inner.get_issuance(token.token_id)
    assert record is not None and record.event == "issued" and len(kube.secrets()) == 1


async def test_a_token_of_another_caller_is_absent(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    token = await issued(issuer, kube)
    with pytest.raises(BrokerError) as err:
        await revocations(kube, store).revoke(Caller("jenkins", ("ci",), "api-key"), token.token_id)
    assert err.value.kind is ErrorKind.NOT_FOUND and len(kube.secrets()) == 1


async def test_expiry_deletes_the_secrets_then_marks_the_records(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    first, second = await issued(issuer, kube), await issued(issuer, kube)
    kube.fail_next("DELETE", kube.secrets()[1]["metadata"]["name"], 503)
    revocation = Revocation(store, {CLUSTER: kube.cluster(CLUSTER)})  # type: ignore[arg-type]
    later = datetime.now(UTC) + timedelta(hours=2)
    batch = await store.inner.due_for_cleanup(later)
    outcome = await revocation.expire(batch, later)
    assert (outcome.deleted, outcome.failed, [r.id for r in outcome.events]) == (1, 1, [outcome.ended[0].id])
    assert kube.journal.index("store.mark_expired") > max(
        i for i, c in enumerate(kube.journal) if c.startswith("DELETE")
    )
    states = {t.token_id: (await store.inner.get_issuance(t.token_id)).event for t in (first, second)}  # type: ignore[union-attr]
    assert sorted(states.values()) == ["expired", "issued"] and len(kube.secrets()) == 1
