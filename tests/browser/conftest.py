"""A real ``faafo up`` and Debian's Chromium driven by Playwright, for the gallery's tests.

Playwright's own browser download is never used: the tests point it at the
system's ``chromium``. Without Chromium or Playwright the tests skip with the
reason, unless ``FAAFO_REQUIRE_SERVERS=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.processes import free_port, wait_http, wait_until
from support.servers import unavailable

DESKTOP = {"width": 1440, "height": 960}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        unavailable("Debian's chromium (apt-get install chromium)")
    return found


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python (pip install playwright)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Server:
    """One ``faafo up`` with its client token, and an HTTP client that uses it."""

    url: str
    token: str
    api: httpx.Client

    def create(self, tasks: list[dict]) -> list[dict]:
        response = self.api.post("/v1/fractal", json=tasks)
        assert response.status_code == 201, response.text
        return response.json()["objects"]

    def record(self, uuid: str) -> dict:
        response = self.api.get(f"/v1/fractal/{uuid}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_done(self, uuids: list[str], timeout: float = 120) -> None:
        def finished() -> bool:
            return all(self.record(u)["status"] == "done" for u in uuids)

        wait_until(finished, timeout, interval=0.3, message=f"{len(uuids)} fractal(s) done")


@contextmanager
def faafo_up(work: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``faafo up`` with one worker on a free port and a fresh data directory under ``work``."""
    port = free_port()
    log_path = work / "up.log"
    environment = {**os.environ, "XDG_CONFIG_HOME": str(work / "config"), **(env or {})}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "faafo.client.cli", "up", "--data-dir", str(work / "data"),
             "--bind-port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(url + "/readyz", timeout=90)
            banner = b"faafo is running at"
            wait_until(lambda: banner in log_path.read_bytes(), 30, message="banner")
        except AssertionError as error:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{error}\n{tail}") from None
        tokens = json.loads((work / "data" / "tokens.json").read_text())
        token = tokens["client_token"]
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            yield Server(url=url, token=token, api=client)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """``faafo up`` with one worker, tokens, public reads."""
    with faafo_up(tmp_path_factory.mktemp("faafo-up")) as running:
        yield running


class Console:
    """Every console error and uncaught exception of a page, to assert there were none."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def unexpected(self, *allowed: str) -> list[str]:
        """Errors other than those containing one of ``allowed``."""
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser, server):
    """A fresh browser profile (its own localStorage) per test."""
    opened = browser.new_context(viewport=DESKTOP, base_url=server.url)
    opened.set_default_timeout(30_000)
    yield opened
    opened.close()


@pytest.fixture
def page(context, console):
    """A page that fails its test on any console error."""
    opened = context.new_page()
    console.watch(opened)
    yield opened
    assert console.unexpected() == [], "console errors"


@pytest.fixture
def signed_in(context, server):
    """The client token already saved in this profile, as after answering the dialog once."""
    context.add_init_script(f"localStorage.setItem('faafo.token', {json.dumps(server.token)})")


def screenshot(page, name: str, *, full_page: bool = True) -> Path:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def all_images_loaded(page) -> None:  # type: ignore[no-untyped-def]
    """Scroll through the page (lazy images load when near), then check every image decoded."""
    page.evaluate(
        """async () => {
            for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight / 2) {
                window.scrollTo(0, y);
                await new Promise((resolve) => setTimeout(resolve, 50));
            }
            window.scrollTo(0, 0);
        }"""
    )
    page.wait_for_function(
        "[...document.images].every((img) => img.complete)", timeout=30_000
    )
    broken = page.evaluate(
        "[...document.images].filter((img) => img.naturalWidth === 0).map((img) => img.src)"
    )
    assert broken == [], f"images that did not load: {broken}"
