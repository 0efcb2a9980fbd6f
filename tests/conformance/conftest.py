"""Every test here needs both backends: a fresh simulator configured like the real control plane, and the
session's real control plane; both hold a namespace of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends import REAL, fresh_name
from conformance_support import Pair, Peer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane import ControlPlane
from controlplane.plane import ISSUER
from kubesim import KubeSim, SimOptions

# the real control plane's --service-account-max-token-expiration (PlaneOptions) in seconds
MAX_TOKEN_EXPIRATION = 48 * 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(REAL)


@pytest.fixture(scope="session")
def signing_key_pem() -> bytes:
    """One service-account key for every simulator of the session (an RSA key costs 80 ms to make)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
async def pair(control_plane: ControlPlane, tmp_path: Path, signing_key_pem: bytes) -> AsyncIterator[Pair]:
    options = SimOptions(
        signing_key_pem=signing_key_pem,
        issuer=ISSUER,
        api_audiences=[ISSUER],
        max_token_expiration=MAX_TOKEN_EXPIRATION,
        public_issuer_discovery=False,
    )
    async with KubeSim(options, state_dir=tmp_path / "sim") as sim:
        pair = Pair(Peer("sim", sim), Peer("real", control_plane), fresh_name("conf"))
        await pair.setup(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": pair.namespace}},
        )
        try:
            yield pair
        finally:
            for peer in pair.peers:
                await peer.close()
