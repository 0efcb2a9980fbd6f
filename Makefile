# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-real tools services control-plane lint typecheck imports unit venv bench clean test-py313 py313-run

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/token-broker demo --state-dir .demo

lint: $(STAMP)
	$(BIN)/ruff check broker kubesim controlplane tests
	$(BIN)/ruff format --check broker kubesim controlplane tests

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

# Python 3.13's ssl defaults (VERIFY_X509_STRICT) differ from 3.11's, and the Docker image runs 3.13: the tests
# marked py313 run a second time under 3.13, in .venv-3.13 (pyenv's or python3.13 on PATH). Without 3.13 the
# target fails under CI=true and says what to install otherwise.
VENV313 := .venv-3.13
STAMP313 := $(VENV313)/.installed

test-py313:
	@if py=$$(.ci/find-python 3.13); then \
		$(MAKE) --no-print-directory PY313="$$py" py313-run; \
	elif [ "$${CI:-}" = true ]; then \
		echo "test-py313: FAILED: no Python 3.13 (python3.13 on PATH or pyenv's); CI must run the py313 tests" >&2; \
		exit 1; \
	else \
		echo "test-py313: SKIPPED: no Python 3.13 found; install it (pyenv install 3.13, or apt-get install" \
			"python3.13 python3.13-venv) to run the py313 tests under 3.13" >&2; \
	fi

$(STAMP313): pyproject.toml constraints.txt
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --upgrade pip
	$(VENV313)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP313)

py313-run: $(STAMP313)
	$(VENV313)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version'
	$(VENV313)/bin/pytest -q -m py313 -p no:cacheprovider tests/tls


# PostgreSQL for the audit-store tests (installed and started when root on Debian; tools/postgres.sh) and
# rsyslog for the syslog-sink tests (installed, never started: the tests run their own; tools/rsyslog.sh)
services:
	@tools/postgres.sh
	@tools/rsyslog.sh

# The real kube-apiserver, kube-controller-manager, etcd and kubectl, built once from the Go modules pinned in
# tools/control-plane/go.mod into ~/.cache/kube-token-broker/control-plane/<version>/. Without Go the real tier
# is skipped locally (saying so) and fails the run in CI.
control-plane:
	@tools/control-plane/build.sh >/dev/null || { rc=$$?; [ $$rc = 3 ] && [ "$$CI" != true ] || exit $$rc; \
		echo "control-plane: not built; the real-control-plane tests will be skipped"; }

test: tools services control-plane lint typecheck imports unit test-py313

# only the tests judged by the real control plane (e2e on both backends' real half, conformance, chart RBAC)
test-real: $(STAMP) services control-plane
	$(BIN)/pytest -q -m real

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(VENV313) .demo .mypy_cache .ruff_cache .pytest_cache
