"""Running faafo's real programs as child processes, with their logs kept for failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One child process (``python -m module args``) logging to a file."""

    def __init__(
        self, name: str, module: str, args: list[str], log_dir: Path, env: dict | None = None
    ):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.argv = [sys.executable, "-m", module, *args]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.process.pid, signum)  # type: ignore[union-attr]

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to clean up."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(url: str, timeout: float = 60, services: list[Service] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for service in services or []:
            if not service.alive():
                raise AssertionError(f"{service.name} exited:\n{service.tail()}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.1)
    tails = "\n".join(f"--- {s.name}\n{s.tail()}" for s in services or [])
    raise AssertionError(f"{url} not ready after {timeout}s ({last})\n{tails}")


def wait_until(
    predicate, timeout: float, interval: float = 0.2, message: str = "condition"
) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def start_api(name: str, base: Path, *options: str) -> tuple[Service, int, str]:
    """A ``faafo-api`` process on a free loopback port with its data under ``base``, ready.

    Returns the service, its port and its URL; the caller stops it.
    """
    port = free_port()
    service = Service(
        name,
        "faafo.api.main",
        [
            "--data-dir",
            str(base / "data"),
            "--listen-address",
            "127.0.0.1",
            "--bind-port",
            str(port),
            *options,
        ],
        base,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", services=[service])
    except BaseException:
        service.stop()
        raise
    return service, port, url
