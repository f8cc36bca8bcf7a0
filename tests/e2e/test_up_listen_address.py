"""``faafo up --listen-address`` a specific address: the workers deliver to that address."""

from __future__ import annotations

import socket

import httpx
import pytest

from faafo.launcher.addresses import public_url, worker_endpoint
from support.processes import free_port
from support.up import UpProcess, cmdline_of, render_tasks


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.2", "127.0.0.2"),  # Linux routes all of 127/8 to lo: a second address
        pytest.param("::1", "[::1]", marks=pytest.mark.skipif(
            not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")),
    ],
)
def test_tasks_finish_when_the_api_listens_on_one_address(tmp_path, address, host):
    port = free_port()
    up = UpProcess(tmp_path, "--listen-address", address, "--bind-port", str(port),
                   "--workers", "1")
    try:
        url = up.wait_banner()
        assert url == f"http://{host}:{port}", "the printed URL is the address, bracketed"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)  # what workers used to call
        records = render_tasks(url, up.tokens()["client_token"])
        assert {r["status"] for r in records} == {"done"}
        (worker,) = up.children("faafo.worker.main")
        assert f"http://{host}:{port}" in cmdline_of(worker)
    finally:
        assert up.stop() == 0, up.log()[-3000:]


def test_endpoint_and_printed_url_rules():
    assert worker_endpoint("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert worker_endpoint("10.0.0.5", 80) == "http://10.0.0.5:80"
    assert worker_endpoint("fe80::1", 80) == "http://[fe80::1]:80"
    assert worker_endpoint("::", 80) in ("http://[::1]:80", "http://127.0.0.1:80")
    assert public_url("0.0.0.0", 8080) == "http://localhost:8080"
    assert public_url("::", 8080) == "http://localhost:8080"
    assert public_url("2001:db8::5", 8080) == "http://[2001:db8::5]:8080"
    assert public_url("myhost", 8080) == "http://myhost:8080"
