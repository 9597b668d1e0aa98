# Two entry points: `make run` (venv + daemon on embedded defaults) and `make test` (everything the
# tests need, then the whole suite). Both bootstrap themselves on a fresh Debian 12 machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages that build the .deb (debian/control's Build-Depends) and check it (tests/package:
# lintian, a debootstrapped chroot, systemd-analyze, systemd-nspawn).
DEB_DEBS  := debhelper dpkg-dev python3-dev python3-venv libsystemd-dev pkg-config ca-certificates zstd
# Debian packages the test suite drives for real.
TEST_DEBS := curl iproute2 procps redis-server coturn iptables chromium fonts-dejavu-core \
             $(DEB_DEBS) lintian debootstrap systemd systemd-container

.PHONY: run test venv bench clean deb deb-requirements

$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	    || scripts/ensure-debs python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: $(BIN)/python pyproject.toml web_ui/vendor/.fetched
	$(BIN)/python -m pip install -q -e .
	@touch $@

# The web UI's third-party browser code, from the npm registry (pinned in web_ui/vendor.json).
web_ui/vendor/.fetched: web_ui/vendor.json scripts/fetch-web-deps
	$(PYTHON) scripts/fetch-web-deps
	@touch $@

# The systemd extra (systemd-python) builds against libsystemd-dev, hence the Debian packages first.
$(VENV)/.test-deps: $(BIN)/python pyproject.toml web_ui/vendor/.fetched
	scripts/ensure-debs $(TEST_DEBS)
	$(BIN)/python -m pip install -q -e '.[test,systemd]'
	@touch $@

venv: $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/doorstep daemon

test: $(VENV)/.test-deps
	scripts/ensure-debs $(TEST_DEBS)
	$(BIN)/python -m pytest

bench: $(VENV)/.test-deps
	$(BIN)/python bench/transfer.py

# build/deb/doorstep_<version>_<arch>.deb (docs/packaging.md); reused while its inputs are unchanged.
deb:
	scripts/ensure-debs $(DEB_DEBS)
	scripts/build-deb

# The package's pinned runtime set, from the venv the tests run in.
deb-requirements: $(VENV)/.test-deps
	$(BIN)/python debian/pin-requirements > debian/requirements.txt

clean:
	rm -rf $(VENV) .state build
