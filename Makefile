# Two entry points: `make run` (venv + daemon on embedded defaults) and `make test` (everything the
# tests need, then the whole suite). Both bootstrap themselves on a fresh Debian 12 machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the test suite drives for real.
TEST_DEBS := curl iproute2 procps redis-server coturn iptables chromium fonts-dejavu-core

.PHONY: run test venv bench clean

$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	    || scripts/ensure-debs python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/doorstep daemon

test: $(VENV)/.test-deps
	scripts/ensure-debs $(TEST_DEBS)
	$(BIN)/python -m pytest

bench: $(VENV)/.test-deps
	$(BIN)/python bench/transfer.py

clean:
	rm -rf $(VENV) .state
