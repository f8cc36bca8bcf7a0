"""Where a decision takes effect: local processes, Heat scaling policies, ``faafo deploy``."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

log = logging.getLogger(__name__)


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
    templates); the group's size is tracked from the signals sent, starting at
    ``initial``, or read by ``size_of`` when given (e.g. from the stack).
    """

    def __init__(
        self,
        up_url: str,
        down_url: str,
        initial: int,
        *,
        token: str | None = None,
        size_of=None,  # type: ignore[no-untyped-def]
        timeout: float = 30.0,
    ) -> None:
        self._urls = {1: up_url, -1: down_url}
        self._size = initial
        self._size_of = size_of
        headers = {"X-Auth-Token": token} if token else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def current(self) -> int:
        if self._size_of is not None:
            self._size = int(self._size_of())
        return self._size

    def resize(self, workers: int) -> None:
        step = 1 if workers > self._size else -1
        while self._size != workers:
            response = self._http.post(self._urls[step], json={})
            if response.status_code >= 400:
                raise RuntimeError(f"scaling signal refused: HTTP {response.status_code}")
            self._size += step
            log.info(
                "signalled Heat to scale %s (now %d)", "up" if step > 0 else "down", self._size
            )
