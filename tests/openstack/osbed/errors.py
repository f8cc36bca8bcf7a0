"""The one error the bed raises: it names the failing service and carries the
tail of that service's log, which is what a failed CI run must show."""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 40


def tail(path: Path | None, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, or a note that there is none."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class BedError(RuntimeError):
    """The bed could not come up (or stay up) because of ``service``."""

    def __init__(self, service: str, reason: str, log: Path | None = None):
        self.service = service
        self.reason = reason
        self.log = log
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"OpenStack test bed: {self.service}: {self.reason}"
        if self.log is not None:
            lines = tail(self.log, 400).splitlines()
            # A traceback can push the one telling line out of the tail.
            critical = [line for line in lines if " CRITICAL " in line]
            if critical:
                text += f"\n{critical[-1]}"
            text += f"\n--- last lines of {self.log} ---\n" + "\n".join(lines[-TAIL_LINES:])
        return text


class Unavailable(BedError):
    """A prerequisite of this machine is missing (not root, no MariaDB...): tests
    skip on a laptop, and fail only where servers are required (CI)."""
