"""NAT-matrix fixtures: a fresh namespace lab per test, always torn down.

These tests need root (namespaces, veth, bridges, iptables) and the ``ip`` and ``iptables`` tools.
Elsewhere they skip, saying why; with ``CI=true`` a missing piece fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI, require_binary

from .lab import Lab, remove_stale_namespaces


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: builds network namespaces and NAT with iptables (needs root)")


def _require_root() -> None:
    if os.geteuid() != 0:
        message = "network namespace tests need root (ip netns, veth, iptables)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def lab_tools() -> None:
    _require_root()
    for tool in ("ip", "iptables", "curl"):
        require_binary(tool)
    remove_stale_namespaces()


@pytest.fixture
def lab(lab_tools: None) -> Iterator[Lab]:
    """A new lab (its own internet namespace); every process and namespace is gone afterwards."""
    with Lab() as built:
        yield built
