"""Fixtures for faafo deploy's tests: the OpenStack test bed's, plus a state dir and a key.

The bed's fixtures come from tests/openstack (its README's "Integration
notes"); the fast tests here do not touch them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "openstack"))
sys.path.insert(0, str(TESTS))
from osbed.pytest_plugin import (  # noqa: E402 - after the sys.path lines above
    openstack_admin,
    openstack_bed,
    openstack_cleanup,
    openstack_demo,
    pytest_configure,
    pytest_runtest_makereport,
)

from multihost.conftest import cluster, topology  # noqa: E402 - the namespace harness

__all__ = [
    "cluster",
    "openstack_admin",
    "openstack_bed",
    "openstack_cleanup",
    "openstack_demo",
    "pytest_configure",
    "pytest_runtest_makereport",
    "topology",
]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A throwaway SSH public key (a real one: nova checks the format)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub")
