"""Bounded exponential back-off, shared by the slots of one worker.

A worker whose API refuses it (wrong token) or cannot be reached must not
retry as fast as the queue hands messages back: that flooded the API with
~16 refused claims a second. Each kind of trouble has one :class:`Backoff`:
consecutive failures double the wait up to a cap, any success resets it, and
only the first failure of a run is worth an error line.
"""

from __future__ import annotations

import threading


class Backoff:
    """Waits of ``first``, ``2 * first``, ... up to ``cap`` seconds, until a success."""

    def __init__(self, first: float = 1.0, cap: float = 60.0) -> None:
        if first <= 0 or cap < first:
            raise ValueError("back-off needs 0 < first <= cap")
        self.first = first
        self.cap = cap
        self._failures = 0
        self._lock = threading.Lock()

    def failed(self) -> tuple[float, bool]:
        """One more failure: how long to wait now, and whether it is the first of a run."""
        with self._lock:
            self._failures += 1
            failures = self._failures
        return min(self.cap, self.first * 2 ** min(failures - 1, 30)), failures == 1

    def succeeded(self) -> bool:
        """Back to normal; True when this ends a run of failures (worth saying so)."""
        with self._lock:
            ended = self._failures > 0
            self._failures = 0
        return ended

    @property
    def failing(self) -> bool:
        with self._lock:
            return self._failures > 0
