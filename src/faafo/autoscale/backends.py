"""Where a decision takes effect: local processes, Heat scaling policies, ``faafo deploy``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

#: The autoscaling group's resource name in deploy/heat/scaled.yaml.
GROUP_RESOURCE = "workers"


class Backend(Protocol):
    """Something that runs workers and can be resized."""

    def current(self) -> int: ...

    def resize(self, workers: int) -> None: ...


class LocalWorkers:
    """Worker processes on this machine, run by a :class:`~faafo.launcher.supervisor.Supervisor`."""

    def __init__(self, supervisor) -> None:  # type: ignore[no-untyped-def]
        self._supervisor = supervisor

    def current(self) -> int:
        return self._supervisor.worker_count

    def resize(self, workers: int) -> None:
        self._supervisor.scale(workers)


class HeatScalingPolicies:
    """The scale-up / scale-down policies of a Heat stack, driven by their signal URLs.

    Each signal moves the group by the policy's adjustment (one worker in our
    templates). Heat answers a signal before it acts on it, and ignores one that
    arrives while the group is still changing, so counting signals would drift:
    when ``size_of`` and ``busy`` are given (the stack's ``workers_size`` output
    and the group's resource status, see :func:`heat_stack_policies`), a signal
    is sent only to a settled group and followed by waiting until the group has
    moved and settled again. Without them the size is tracked from the signals
    sent, starting at ``initial``.
    """

    def __init__(
        self,
        up_url: str,
        down_url: str,
        initial: int = 1,
        *,
        token: str | None = None,
        size_of: Callable[[], int] | None = None,
        busy: Callable[[], bool] | None = None,
        timeout: float = 30.0,
        settle_timeout: float = 300.0,
        poll: float = 2.0,
    ) -> None:
        self._urls = {1: up_url, -1: down_url}
        self._size = initial
        self._size_of = size_of
        self._busy = busy or (lambda: False)
        self._settle_timeout = settle_timeout
        self._poll = poll
        headers = {"X-Auth-Token": token} if token else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def current(self) -> int:
        if self._size_of is not None:
            self._size = int(self._size_of())
        return self._size

    def resize(self, workers: int) -> None:
        self._wait(lambda: not self._busy(), "the group to finish changing")
        while self.current() != workers:
            step = 1 if workers > self._size else -1
            before = self._size
            response = self._http.post(self._urls[step], json={})
            if response.status_code >= 400:
                raise RuntimeError(f"scaling signal refused: HTTP {response.status_code}")
            if self._size_of is None:
                self._size += step
            else:
                self._wait_moved(before)
            log.info(
                "signalled Heat to scale %s (now %d)", "up" if step > 0 else "down", self._size
            )

    def _wait_moved(self, before: int) -> None:
        self._wait(lambda: self.current() != before and not self._busy(), "Heat to act")

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._settle_timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {self._settle_timeout:.0f}s waiting for {what} "
                    f"(group at {self._size})"
                )
            time.sleep(self._poll)


def heat_stack_policies(stack_name: str, cloud: str | None = None) -> HeatScalingPolicies:
    """The policies of a stack made from ``deploy/heat/scaled.yaml``, found by its name.

    The signal URLs and the group's size come from the stack's outputs
    (``scale_up_url``, ``scale_down_url``, ``workers_size``), so nothing has to be
    copied by hand and the size is always the group's own.
    """
    import openstack

    conn = openstack.connect(cloud=cloud)

    def found() -> Any:
        """The stack as named now (looked up each time: a stack may be replaced)."""
        stack = conn.orchestration.find_stack(stack_name, ignore_missing=True)
        if stack is None:
            raise LookupError(f"no Heat stack named {stack_name!r}")
        return stack

    def outputs() -> dict[str, object]:
        stack = conn.orchestration.get_stack(found().id)
        return {o["output_key"]: o.get("output_value") for o in stack.outputs or []}

    def busy() -> bool:
        for resource in conn.orchestration.resources(found()):
            if resource.name == GROUP_RESOURCE:
                return str(resource.status).endswith("IN_PROGRESS")
        return False

    first = outputs()
    missing = [k for k in ("scale_up_url", "scale_down_url", "workers_size") if k not in first]
    if missing:
        raise LookupError(f"stack {stack_name!r} has no output {', '.join(missing)}")
    return HeatScalingPolicies(
        str(first["scale_up_url"]),
        str(first["scale_down_url"]),
        int(first["workers_size"]),  # type: ignore[call-overload]
        size_of=lambda: int(outputs()["workers_size"]),  # type: ignore[call-overload]
        busy=busy,
    )
