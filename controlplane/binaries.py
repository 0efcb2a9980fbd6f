"""Where `make control-plane` put the binaries, and a one-line reason when it did not."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# tools/control-plane/ pins the release; this file is read so the version lives in go.mod alone
_GO_MOD = Path(__file__).resolve().parents[1] / "tools" / "control-plane" / "go.mod"
_NAMES = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")


class ControlPlaneUnavailable(RuntimeError):
    """The binaries are not built (or not runnable here); the message says what to do, in one line."""


@dataclass(frozen=True)
class Binaries:
    directory: Path
    version: str

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.directory / "kube-controller-manager"

    @property
    def kubectl(self) -> Path:
        return self.directory / "kubectl"

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"


def pinned_version(go_mod: Path = _GO_MOD) -> str:
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise ControlPlaneUnavailable(f"{go_mod}: no k8s.io/kubernetes requirement")
    return match.group(1)


def cache_root() -> Path:
    """The same directory tools/control-plane/build.sh writes to."""
    if explicit := os.environ.get("KTB_CONTROL_PLANE_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kube-token-broker" / "control-plane"


def locate() -> Binaries:
    """The built control plane of the pinned release, or ControlPlaneUnavailable saying how to get it."""
    if not _GO_MOD.exists():
        raise ControlPlaneUnavailable(f"{_GO_MOD} not found: the real control plane needs a source checkout")
    version = pinned_version()
    binaries = Binaries(cache_root() / version, version)
    missing = [name for name in _NAMES if not os.access(binaries.directory / name, os.X_OK)]
    if missing:
        raise ControlPlaneUnavailable(
            f"real control plane {version} not built ({', '.join(missing)} missing in {binaries.directory}): "
            "run `make control-plane` (needs Go >= 1.24 and the Go module proxy; about 15 minutes the first time)"
        )
    return binaries
