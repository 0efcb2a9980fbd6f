"""[janitor]: expiry sweeps, repair and the Lease that elects one replica to do them."""

from __future__ import annotations

from pydantic import StrictBool, model_validator

from .fields import Name, NonNegativeFloat, PositiveFloat, Section, raise_problems


class JanitorConfig(Section):
    """Expiry sweeps and early revocation; one replica at a time, elected through a coordination.k8s.io Lease."""

    enabled: StrictBool = True
    # how often the leader looks for bound Secrets past expiry / revoke-at
    interval_seconds: PositiveFloat = 10.0
    # the cluster holding the Lease (optional when exactly one cluster is configured)
    cluster: Name | None = None
    lease_namespace: Name = "default"
    lease_name: Name = "kube-token-broker-janitor"
    # client-go leaderelection defaults
    lease_duration_seconds: PositiveFloat = 15.0
    renew_deadline_seconds: PositiveFloat = 10.0
    retry_period_seconds: PositiveFloat = 2.0
    # pending records older than this are repaired (their bound Secret deleted, the record aborted) at start-up
    repair_after_seconds: NonNegativeFloat = 60.0

    @model_validator(mode="after")
    def _timings(self) -> JanitorConfig:
        problems: list[tuple[str, str]] = []
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            problems.append(
                (
                    "renew_deadline_seconds",
                    "need retry_period_seconds < renew_deadline_seconds < lease_duration_seconds",
                )
            )
        raise_problems(problems)
        return self
