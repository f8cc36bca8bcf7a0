"""pytest fixtures for the OpenStack test bed, importable by any conftest.

``tests/openstack/conftest.py`` loads this module; tests elsewhere (``faafo
deploy``, the autoscaler) get the same fixtures by putting ``tests/openstack``
on ``sys.path`` and listing ``osbed.pytest_plugin`` in ``pytest_plugins`` of
their conftest (see README.md, "Integration notes").

Following the app's test conventions: with ``FAAFO_REQUIRE_SERVERS=1`` (CI) a
bed that cannot come up fails the tests, naming the service and showing its
log; elsewhere they skip, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .control import down
from .errors import BedError
from .handle import Bed
from .lifecycle import ensure_up

REQUIRED = os.environ.get("FAAFO_REQUIRE_SERVERS") == "1"
MARKER = "openstack: needs the OpenStack test bed (tests/openstack/bed.py; slow to start)"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker here too, so ``--strict-markers`` accepts it even
    before pyproject.toml lists it."""
    config.addinivalue_line("markers", MARKER)


def _unavailable(message: str) -> None:
    if REQUIRED:
        pytest.fail(message + "\n(FAAFO_REQUIRE_SERVERS=1: the OpenStack test bed is required)",
                    pytrace=False)
    pytest.skip(message)


def _keep() -> bool:
    """Leave a bed this session started running: asked for, or other xdist
    workers may still be using it."""
    return os.environ.get("FAAFO_OPENSTACK_KEEP") == "1" or "PYTEST_XDIST_WORKER" in os.environ


@pytest.fixture(scope="session")
def openstack_bed(request: pytest.FixtureRequest) -> Iterator[Bed]:
    """The running bed (brought up now if it is not up yet, else reused).

    A bed this session started is torn down at its end unless
    ``FAAFO_OPENSTACK_KEEP=1``; one that was already running is left alone.
    """
    if not sys.platform.startswith("linux"):
        _unavailable("the OpenStack test bed runs on Linux only")
    if importlib.util.find_spec("openstack.connection") is None:
        _unavailable("openstacksdk is not installed in this environment (pip install openstacksdk)")
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(text: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[openstack bed] {text}", file=sys.stderr, flush=True)

    failure: BedError | None = None
    try:
        bed, started = ensure_up(say=say)
    except BedError as error:
        failure = error
    if failure is not None:  # outside the except: no chained traceback in the report
        _unavailable(failure.describe())
    yield bed
    if started and not _keep():
        down(say=say)


@pytest.fixture(scope="session")
def openstack_admin(openstack_bed: Bed) -> Any:
    """openstacksdk connection as the bed's admin (project ``admin``)."""
    return openstack_bed.connect(openstack_bed.admin_cloud)


@pytest.fixture(scope="session")
def openstack_demo(openstack_bed: Bed) -> Any:
    """openstacksdk connection as the ``demo`` user in project ``demo``: what
    a tenant of a real cloud sees."""
    return openstack_bed.connect(openstack_bed.demo_cloud)


@pytest.fixture
def openstack_cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register undo steps as resources are made; they run last-first at the
    end of the test even when it fails, and a failing step does not stop the
    others (the first error is raised afterwards)."""
    steps: list[Callable[[], object]] = []
    yield steps.append
    errors: list[BaseException] = []
    for step in reversed(steps):
        try:
            step()
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test on the bed shows the tails of the services' logs."""
    outcome = yield
    report = outcome.get_result()
    bed = item.funcargs.get("openstack_bed") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(bed, Bed):
        report.sections.append(("OpenStack test bed logs", bed.logs_summary()))
