"""Names the bench's cluster objects, callers and roles share."""

from __future__ import annotations

BROKER_USER = "token-broker"
NAMESPACE = "bench"
SERVICE_ACCOUNT = "bench-sa"
# callers are in this group; every bench grant names it
GROUP = "bench"
# service accounts the growth roles share (role i uses ROLE_ACCOUNTS[i % len])
ROLE_ACCOUNTS = tuple(f"bench-sa-{i:02d}" for i in range(10))
# how long a child process may take to serve
START_TIMEOUT = 120.0


def caller_name(i: int) -> str:
    """The i-th concurrent client's identity (CN=client-NNN, O=bench)."""
    return f"client-{i:03d}"
