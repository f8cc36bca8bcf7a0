"""deploy/haproxy/haproxy.cfg run by a real HAProxy: what it retries and what it refuses.

An API host that dies after committing a POST but before answering leaves
HAProxy with an empty response. Replaying a GET then is harmless; replaying a
POST /v1/fractal would create the tasks again, unless the client sent an
``Idempotency-Key`` (the API answers a repeat with the first answer). A
connection that was refused is retried for every method: nothing reached a
server. The backends here are small HTTP servers that answer the health check
and then, for every other request, either answer or close the connection
without a word, as an API killed in the middle of a request does. No root
needed: HAProxy listens on free loopback ports.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")


class Backend(ThreadingHTTPServer):
    """An API stand-in on a free port: ready for health checks, then answers or dies."""

    daemon_threads = True

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        """A connection this server closed on purpose may fail afterwards: not news."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def requests(self, method: str | None = None) -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.seen if method is None or r[0] == method]


class _Handler(BaseHTTPRequestHandler):
    server: Backend

    def log_message(self, *args: object) -> None:  # quiet: the test reads ``seen``
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/readyz":
            self._answer(200, b'{"status": "ok"}')
            return
        with self.server.lock:
            self.server.seen.append((self.command, self.path))
        if self.server.answers:
            self._answer(201 if self.command == "POST" else 200, b"{}")
        else:
            # Died after reading the request: the client gets no byte back.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def balancer(tmp_path: Path, api_1: str, api_2: str) -> Iterator[str]:
    """HAProxy with the shipped configuration, its listeners moved to free loopback ports."""
    port, stats = free_port(), free_port()
    text = CONFIG.read_text()
    assert "    bind :80\n" in text and "    bind 127.0.0.1:8404\n" in text
    text = text.replace("    bind :80\n", f"    bind 127.0.0.1:{port}\n")
    text = text.replace("    bind 127.0.0.1:8404\n", f"    bind 127.0.0.1:{stats}\n")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    env = {**os.environ, "FAAFO_API_1": api_1, "FAAFO_API_2": api_2}
    log = (tmp_path / "haproxy.log").open("wb")
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        # Until both servers passed their two health checks (a DOWN one is never tried).
        while not _both_up(stats):
            assert process.poll() is None, (tmp_path / "haproxy.log").read_text()
            assert time.monotonic() < deadline, "HAProxy never saw both servers UP"
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)
        log.close()


def _both_up(stats_port: int) -> bool:
    try:
        csv = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=2).text
    except httpx.HTTPError:
        return False
    states = [line.split(",")[17] for line in csv.splitlines()
              if re.match(r"faafo-api,api-\d,", line)]
    return states == ["UP", "UP"]


@pytest.fixture
def dying(tmp_path: Path) -> Iterator[tuple[str, list[Backend]]]:
    """HAProxy in front of two API hosts that both die on every request."""
    backends = [Backend(answers=False), Backend(answers=False)]
    try:
        with balancer(tmp_path, backends[0].address, backends[1].address) as url:
            yield url, backends
    finally:
        for backend in backends:
            backend.shutdown()
            backend.server_close()


def seen(backends: list[Backend], method: str) -> int:
    return sum(len(b.requests(method)) for b in backends)


def test_a_post_without_idempotency_key_is_not_replayed(dying) -> None:
    url, backends = dying
    answer = httpx.post(f"{url}/v1/fractal", json={"width": 8}, timeout=30)
    assert answer.status_code == 502
    assert seen(backends, "POST") == 1, "HAProxy replayed a POST the server may have committed"


def test_a_post_with_idempotency_key_and_a_get_are_retried(dying) -> None:
    url, backends = dying
    keyed = httpx.post(f"{url}/v1/fractal", json={"width": 8}, timeout=30,
                       headers={"Idempotency-Key": "6f1c0c1e-5d0e-4d53-9a8e-0d3c1b7f4a21"})
    assert keyed.status_code == 502
    assert seen(backends, "POST") == 4, "1 try and 3 retries (retries 3)"
    assert httpx.get(f"{url}/v1/fractal", timeout=30).status_code == 502
    assert seen(backends, "GET") == 4


def test_a_refused_post_is_retried_on_the_other_server(tmp_path: Path) -> None:
    """Connection refused: the request never reached a server, so any method is retried."""
    alive = Backend(answers=True)
    # A server that passes its checks, then goes away: its port refuses from then on.
    leaving = Backend(answers=True)
    try:
        with balancer(tmp_path, leaving.address, alive.address) as url:
            leaving.shutdown()
            leaving.server_close()
            answers = [httpx.post(f"{url}/v1/fractal", json={"width": 8}, timeout=30).status_code
                       for _ in range(4)]
            assert answers == [201] * 4
            assert len(alive.requests("POST")) == 4
    finally:
        alive.shutdown()
        alive.server_close()


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "//metrics", "/%6Detrics",
                                  "/metrics?name[]=faafo_tasks"])
def test_metrics_are_refused_at_the_balancer(dying, path: str) -> None:
    url, backends = dying
    answer = httpx.get(url + path, timeout=30)
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == 404 and "each API host" in body["message"]
    assert seen(backends, "GET") == 0


def test_other_paths_that_start_like_metrics_reach_the_api(tmp_path: Path) -> None:
    backend = Backend(answers=True)
    try:
        with balancer(tmp_path, backend.address, backend.address) as url:
            assert httpx.get(f"{url}/metricsfoo", timeout=30).status_code == 200
            assert backend.requests("GET") == [("GET", "/metricsfoo")]
    finally:
        backend.shutdown()
        backend.server_close()
