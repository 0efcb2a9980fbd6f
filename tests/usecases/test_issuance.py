"""The real Issuer, step by step: the write-ahead record comes before anything is created in the cluster, the
token is handed over only once its record says issued, and every failure after the binding Secret exists
rolls it back (or, when even that fails, leaves the record pending for repair to find)."""

from __future__ import annotations

import pytest
from support.journal import JournaledStore
from support.memory_kube import MemoryKube
from support.signing import rsa_key
from usecase_support import CI, CLUSTER, request

from broker.domain.errors import BrokerError, ErrorKind, audit_unavailable
from broker.domain.identity import Caller
from broker.domain.records import AuditFilter
from broker.kube.labels import TOKEN_ID_LABEL
from broker.usecases.issuance import Issuer
from broker.usecases.revocation import REPAIR_REASON, Revocation

SA_CREATE = "POST /api/v1/namespaces/ci/serviceaccounts"
SECRET_CREATE = "POST /api/v1/namespaces/ci/secrets"
TOKEN_REQUEST = "POST /api/v1/namespaces/ci/serviceaccounts/deployer/token"


def steps(kube: MemoryKube) -> list[str]:
    """The journal without the reads (discovery, JWKS, the account lookup)."""
    return [s for s in kube.journal if not s.startswith("GET")]


async def only_record(store: JournaledStore) -> str:
    page = await store.inner.query_issuances(AuditFilter())
    assert len(page.items) == 1
    return str(page.items[0].event)


async def test_the_record_is_written_ahead_and_completed_after_the_token_verified(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    issued = await issuer.issue(CI, request())
    [secret] = kube.secrets()
    assert steps(kube) == [
        "store.begin_issuance",
        SA_CREATE,
        SECRET_CREATE,
        TOKEN_REQUEST,
        "store.complete_issuance",
    ]
    record = await store.inner.get_issuance(issued.token_id)
    assert record is not None and record.event == "issued" and record.jti == issued.jti
    assert record.bound_secret is not None and record.bound_secret.uid == secret["metadata"]["uid"]
    # the Secret names the issuance it belongs to: repair finds it by this label
    assert secret["metadata"]["labels"][TOKEN_ID_LABEL] == issued.token_id


async def test_no_write_ahead_record_no_cluster_object(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    store.fail["begin_issuance"] = audit_unavailable("test: the store is down")
    with pytest.raises(BrokerError) as err:
        await issuer.issue(CI, request())
    assert err.value.kind is ErrorKind.AUDIT_UNAVAILABLE
    assert steps(kube) == ["store.begin_issuance"] and kube.objects == {}


async def test_a_refusal_is_recorded_and_costs_the_cluster_nothing(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    with pytest.raises(BrokerError) as err:
        await issuer.issue(Caller("mallory", ("interns",), "mtls"), request())
    assert err.value.kind is ErrorKind.NO_GRANT
    assert kube.journal == ["store.record_denial"]
    denied = await store.inner.query_events(AuditFilter(event="denied"))
    assert [e.caller_user for e in denied.items] == ["mallory"]


async def test_a_failed_token_request_rolls_back_the_binding_secret(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    kube.fail_next("POST", "/token", 403)
    with pytest.raises(BrokerError) as err:
        await issuer.issue(CI, request())
    assert err.value.kind is ErrorKind.UPSTREAM_REFUSED
    token_request, rollback, recorded = steps(kube)[-3:]
    assert token_request == TOKEN_REQUEST and recorded == "store.fail_issuance"
    assert rollback.startswith("DELETE /api/v1/namespaces/ci/secrets/")
    assert kube.secrets() == [] and await only_record(store) == "failed"


async def test_a_token_that_does_not_verify_is_not_handed_over(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    kube.jwks_key = rsa_key()  # the cluster signs with a key it does not publish
    with pytest.raises(BrokerError) as err:
        await issuer.issue(CI, request())
    assert err.value.kind is ErrorKind.VERIFICATION
    assert kube.secrets() == [] and await only_record(store) == "failed"


async def test_no_completed_record_no_token(issuer: Issuer, kube: MemoryKube, store: JournaledStore) -> None:
    store.fail["complete_issuance"] = audit_unavailable("test: the commit failed")
    with pytest.raises(BrokerError) as err:
        await issuer.issue(CI, request())
    assert err.value.kind is ErrorKind.AUDIT_UNAVAILABLE
    # the token minted is dead: its Secret is gone; the record stays pending for repair
    completion, rollback = steps(kube)[-2:]
    assert completion == "store.complete_issuance"
    assert rollback.startswith("DELETE /api/v1/namespaces/ci/secrets/")
    assert kube.secrets() == [] and await only_record(store) == "pending"


async def test_a_secret_that_cannot_be_rolled_back_is_left_to_repair(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    kube.fail_next("POST", "/token", None)  # no answer
    kube.fail_next("DELETE", "", 503)
    with pytest.raises(BrokerError) as err:
        await issuer.issue(CI, request())
    assert err.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    # not marked failed: a pending record is what tells repair there may be a Secret to delete
    assert "store.fail_issuance" not in kube.journal and len(kube.secrets()) == 1
    assert await only_record(store) == "pending"

    [pending] = (await store.inner.query_issuances(AuditFilter(event="pending"))).items
    revocation = Revocation(store.inner, {CLUSTER: kube.cluster(CLUSTER)})
    assert await revocation.abort(pending)
    aborted = await store.inner.get_issuance(pending.id)
    assert kube.secrets() == [] and aborted is not None and aborted.event == "aborted"
    assert aborted.reason == REPAIR_REASON


async def test_a_role_that_is_not_revocable_binds_nothing(
    issuer: Issuer, kube: MemoryKube, store: JournaledStore
) -> None:
    issued = await issuer.issue(CI, request("reader"))
    assert SECRET_CREATE not in kube.journal and kube.secrets() == []
    record = await store.inner.get_issuance(issued.token_id)
    assert record is not None and record.event == "issued" and record.bound_secret is None
