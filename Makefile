# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-real tools services control-plane lint typecheck imports unit venv bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/token-broker demo --state-dir .demo

lint: $(STAMP)
	$(BIN)/ruff check broker tests
	$(BIN)/ruff format --check broker tests

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

unit: $(STAMP)
	$(BIN)/pytest -q

# promtool (Debian's prometheus package) checks the metrics exposition and alert rules; best effort here,
# .ci/run insists on it
tools:
	@command -v promtool >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; } || \
		echo "promtool not installed: its tests will be skipped"

# PostgreSQL for the audit-store tests (installed and started when root on Debian; tools/postgres.sh)
services:
	@tools/postgres.sh

# The real kube-apiserver, kube-controller-manager, etcd and kubectl, built once from the Go modules pinned in
# tools/control-plane/go.mod into ~/.cache/kube-token-broker/control-plane/<version>/. Without Go the real tier
# is skipped locally (saying so) and fails the run in CI.
control-plane:
	@tools/control-plane/build.sh >/dev/null || { rc=$$?; [ $$rc = 3 ] && [ "$$CI" != true ] || exit $$rc; \
		echo "control-plane: not built; the real-control-plane tests will be skipped"; }

test: tools services control-plane lint typecheck imports unit

# only the tests judged by the real control plane (e2e on both backends' real half, conformance, chart RBAC)
test-real: $(STAMP) services control-plane
	$(BIN)/pytest -q -m real

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
