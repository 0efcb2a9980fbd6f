"""The Cluster calls the janitor and the elector use, against the simulator."""

from __future__ import annotations

import pytest
from janitor_support import LEASES_PATH, NS, SECRETS_PATH, account_exists, secret_exists

from broker.domain.errors import BrokerError
from broker.kube import Cluster, LeaseConflict
from broker.kube.labels import MANAGED_BY
from kubesim import KubeSim


def lease_body(name: str, holder: str) -> dict[str, object]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": "2030-01-01T00:00:00.000000Z",
        },
    }


async def test_delete_secrets_labelled_deletes_only_the_matching_ones(
    kubesim: KubeSim, admin: Cluster
) -> None:
    await admin.accounts.ensure(NS, "deployer")
    mine = [
        await admin.secrets.create_binding(
            NS, service_account="deployer", labels={"token-broker.io/token-id": "t1"}
        )
        for _ in range(2)
    ]
    other = await admin.secrets.create_binding(
        NS, service_account="deployer", labels={"token-broker.io/token-id": "t2"}
    )

    assert await admin.secrets.delete_labelled(NS, "token-broker.io/token-id=t1") == 2
    assert not any(secret_exists(kubesim, s.name) for s in mine)
    assert secret_exists(kubesim, other.name)
    # idempotent: nothing left to delete
    assert await admin.secrets.delete_labelled(NS, "token-broker.io/token-id=t1") == 0
    # a namespace that is gone has no Secrets left
    assert await admin.secrets.delete_labelled("gone", "token-broker.io/token-id=t1") == 0
    deletes = [e for e in kubesim.audit_events if e.method == "DELETE" and e.path.startswith(SECRETS_PATH)]
    assert len(deletes) == 2


async def test_delete_secrets_labelled_reports_failure(kubesim: KubeSim, admin: Cluster) -> None:
    kubesim.faults.path_prefix = SECRETS_PATH
    kubesim.faults.outage = True
    with pytest.raises(BrokerError) as info:
        await admin.secrets.delete_labelled(NS, "token-broker.io/token-id=t1")
    assert info.value.status == 503


async def test_service_account_get_and_delete_with_uid_precondition(kubesim: KubeSim, admin: Cluster) -> None:
    ref = await admin.accounts.ensure(NS, "builder", labels=MANAGED_BY)
    found = await admin.accounts.get(NS, "builder")
    assert found is not None
    assert found["metadata"]["uid"] == ref.uid
    assert found["metadata"]["labels"] == MANAGED_BY

    # another account under the same name (wrong uid): left alone
    assert await admin.accounts.delete(NS, "builder", uid="not-the-uid") is False
    assert account_exists(kubesim, "builder")

    assert await admin.accounts.delete(NS, "builder", uid=ref.uid) is True
    assert not account_exists(kubesim, "builder")
    assert await admin.accounts.get(NS, "builder") is None
    assert await admin.accounts.delete(NS, "builder") is False
    # the cached reference was dropped: the next ensure re-creates the account (a new uid)
    again = await admin.accounts.ensure(NS, "builder")
    assert again.uid != ref.uid


async def test_lease_calls(kubesim: KubeSim, admin: Cluster) -> None:
    assert await admin.leases.get(NS, "janitor") is None
    created = await admin.leases.create(NS, lease_body("janitor", "a"))
    assert created["spec"]["holderIdentity"] == "a"
    with pytest.raises(LeaseConflict):
        await admin.leases.create(NS, lease_body("janitor", "b"))

    with pytest.raises(ValueError, match="resourceVersion"):
        await admin.leases.update(NS, "janitor", lease_body("janitor", "b"))

    stale = await admin.leases.get(NS, "janitor")
    assert stale is not None
    renewed = dict(stale, spec={**stale["spec"], "renewTime": "2030-01-01T00:00:10.000000Z"})
    fresh = await admin.leases.update(NS, "janitor", renewed)
    assert fresh["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]

    # a write based on the version read before someone else's write loses the race
    takeover = dict(stale, spec={**stale["spec"], "holderIdentity": "b"})
    with pytest.raises(LeaseConflict):
        await admin.leases.update(NS, "janitor", takeover)
    current = await admin.leases.get(NS, "janitor")
    assert current is not None and current["spec"]["holderIdentity"] == "a"


async def test_lease_calls_are_not_retried(kubesim: KubeSim, admin: Cluster) -> None:
    created = await admin.leases.create(NS, lease_body("once", "a"))
    kubesim.faults.path_prefix = LEASES_PATH
    kubesim.faults.error_code = 503
    kubesim.faults.error_count = 1
    with pytest.raises(BrokerError) as info:
        await admin.leases.update(NS, "once", created)
    assert info.value.status == 503
    puts = [e for e in kubesim.audit_events if e.method == "PUT" and e.path == f"{LEASES_PATH}/once"]
    assert len(puts) == 1
    # a GET is not retried either (the elector's loop is the retry)
    kubesim.faults.error_count = 1
    with pytest.raises(BrokerError):
        await admin.leases.get(NS, "once")
    gets = [e for e in kubesim.audit_events if e.method == "GET" and e.path == f"{LEASES_PATH}/once"]
    assert len(gets) == 1
