"""What the use-case tests share: one cluster in memory, a policy, a request."""

from __future__ import annotations

from typing import Any

from broker.app.wiring import policy_from
from broker.domain.identity import Caller
from broker.policy import Policy
from broker.settings import BrokerConfig
from broker.usecases.ports import IssueRequest

CLUSTER = "mem"
CI = Caller("jenkins", ("ci",), "mtls")


def make_policy() -> Policy:
    cfg = BrokerConfig.model_validate(
        {
            "server": {"tls_cert": "c", "tls_key": "k", "client_ca": "ca"},
            "clusters": [{"name": CLUSTER, "in_cluster": True}],
            "roles": [
                {"name": "deployer", "service_account": "deployer", "namespaces": ["ci"], "revocable": True},
                {"name": "reader", "service_account": "reader", "namespaces": ["ci"], "default_ttl": "10m"},
            ],
            "grants": [{"name": "ci", "groups": ["ci"], "roles": ["deployer", "reader"]}],
        }
    )
    return policy_from(cfg)


def request(role: str = "deployer", **kw: Any) -> IssueRequest:
    fields: dict[str, Any] = {
        "namespace": "ci",
        "ttl_seconds": None,
        "audiences": None,
        "context": {"job": "build-1"},
        "source_address": "192.0.2.1",
        "user_agent": "pytest",
    }
    return IssueRequest(role=role, **{**fields, **kw})
