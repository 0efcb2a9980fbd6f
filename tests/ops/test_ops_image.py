"""Dockerfile, .dockerignore and constraints.txt. No container engine runs on these machines, so the image is not
built here: hadolint (the real linter) checks the Dockerfile, and the tests below check what a build would use."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution

from ops_tools import REPO, run, tool
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILE = REPO / "Dockerfile"
DEV_TOOLS = {"pytest", "pytest-asyncio", "hypothesis", "ruff", "mypy", "import-linter", "helm-python-sdk"}


def stages() -> list[list[str]]:
    """Instructions per stage, line continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version
    return found


def test_hadolint_finds_nothing() -> None:
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_two_stages_and_the_final_one_holds_only_the_virtualenv() -> None:
    builder, final = stages()
    assert re.match(r"FROM \$\{PYTHON_IMAGE\} AS builder", builder[0])
    assert final[0] == "FROM ${PYTHON_IMAGE}"
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base is not None and re.fullmatch(r"python:3\.1[23]-slim(-\w+)?", base.group(1))

    copies = [i for i in final if i.startswith("COPY")]
    assert copies == ["COPY --from=builder /opt/token-broker /opt/token-broker"]
    assert not [i for i in final if i.startswith("RUN")], "the final stage installs nothing"
    assert any("pip install --no-cache-dir" in i and "-c constraints.txt ." in i for i in builder)


def test_final_stage_runs_token_broker_serve_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    (user,) = [i for i in final if i.startswith("USER ")]
    uid, _, gid = user.split()[1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert 'ENTRYPOINT ["token-broker"]' in final
    assert 'CMD ["serve", "--config", "/etc/token-broker/config.toml"]' in final
    env = " ".join(i for i in final if i.startswith("ENV "))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    (expose,) = [i for i in final if i.startswith("EXPOSE ")]
    assert expose.split()[1:] == ["8443", "9090"]
    labels = " ".join(i for i in final if i.startswith("LABEL "))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("#")]
    assert lines[0] == "*"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    assert allowed == {"broker", "pyproject.toml", "README.md", "constraints.txt"}
    copied = {
        word.rstrip("/").removeprefix("./")
        for stage in stages()
        for i in stage
        if i.startswith("COPY ") and "--from" not in i
        for word in i.split()[1:-1]
    }
    assert copied <= allowed


def test_every_project_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt has no pin for {requirement.name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (spec, pinned[name])


def test_the_whole_runtime_closure_is_pinned_and_nothing_else() -> None:
    """Every distribution `pip install .` pulls in (walked from the installed metadata) has a pin; no test or
    lint tool does."""
    pinned = pins()
    seen: set[str] = set()
    todo = ["kube-token-broker"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    seen.discard("kube-token-broker")
    assert seen - set(pinned) == set(), "regenerate constraints.txt (see its header)"
    assert not set(pinned) & {canonicalize_name(t) for t in DEV_TOOLS}
