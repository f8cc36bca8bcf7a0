"""``faafo up`` as a child process, with what the launcher tests look at: its log, its
children (found through /proc) and the tasks it renders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support.processes import wait_until


class UpProcess:
    """``python -m faafo.client.cli up --data-dir BASE/data ARGS``, logging to BASE/up.log.

    In a session of its own, so that it can be killed whole (``os.killpg``).
    ``data_dir`` and ``log_name`` let several runs share one data directory.
    """

    def __init__(
        self,
        base: Path,
        *args: str,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        log_name: str = "up.log",
    ) -> None:
        self.base = base
        self.data_dir = data_dir or base / "data"
        self.log_path = base / log_name
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("FAAFO_")}
        child_env["XDG_CONFIG_HOME"] = str(base / "config")
        child_env.update(env or {})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "faafo.client.cli", "up", "--data-dir",
                 str(self.data_dir), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_banner(self, timeout: float = 120) -> str:
        """The URL ``faafo up`` says it runs at, once it says so."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"faafo up exited:\n{self.log()[-3000:]}")
            return "faafo is running at " in self.log()

        wait_until(ready, timeout, message="the 'faafo is running' banner")
        return self.log().split("faafo is running at ", 1)[1].split()[0]

    def children(self, module: str) -> list[int]:
        """Pids of the direct children running ``python -m module``."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = next(int(line.split()[1]) for line in status.splitlines()
                        if line.startswith("PPid:"))
            if ppid == self.process.pid and module.encode() in cmdline:
                found.append(int(entry.name))
        return found

    def tokens(self) -> dict[str, str]:
        return json.loads((self.data_dir / "tokens.json").read_text())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        return self.process.returncode


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def cmdline_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def render_tasks(url: str, token: str | None, count: int = 2, timeout: float = 180) -> list[dict]:
    """Create ``count`` small tasks and wait until every one is done; the final records."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    task = {"width": 64, "height": 48, "iterations": 32, "xa": -1.5, "xb": 1.5,
            "ya": -1.0, "yb": 1.0, "seed": 1}
    response = httpx.post(f"{url}/v1/fractal", json=[task] * count, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    uuids = [o["uuid"] for o in response.json()["objects"]]
    records: dict[str, dict] = {}

    def all_done() -> bool:
        for uuid in uuids:
            records[uuid] = httpx.get(f"{url}/v1/fractal/{uuid}", timeout=10).json()
        assert not [r for r in records.values() if r["status"] == "failed"], records
        return all(r["status"] == "done" for r in records.values())

    deadline = time.monotonic() + timeout
    while not all_done():
        assert time.monotonic() < deadline, f"tasks not done after {timeout}s: {records}"
        time.sleep(0.3)
    return list(records.values())
