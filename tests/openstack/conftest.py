"""Fixtures for tests on the OpenStack test bed (marker ``openstack``).

The fixtures live in ``osbed/pytest_plugin.py`` so that other test folders can
use them too; this conftest only loads them for ``tests/openstack``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from osbed.pytest_plugin import (  # noqa: E402 - needs the path above
    openstack_admin,
    openstack_bed,
    openstack_cleanup,
    openstack_demo,
    pytest_configure,
    pytest_runtest_makereport,
)

__all__ = ["openstack_admin", "openstack_bed", "openstack_cleanup", "openstack_demo",
           "pytest_configure", "pytest_runtest_makereport"]
