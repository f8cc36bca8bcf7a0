"""``faafo up``: the whole app on this machine with one command.

Secrets never go on a child's command line (``ps`` shows it to every user):
the database and queue URLs travel as ``FAAFO_DATABASE_URL`` and
``FAAFO_TRANSPORT_URL``, the tokens as ``FAAFO_*_TOKEN``. The API gets both
tokens and the database; the workers only the worker token and the queue.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from faafo.config import DEFAULT_PORT, default_data_dir
from faafo.launcher.addresses import can_listen, public_url, url_host, worker_endpoint
from faafo.logs import check_log_format, check_log_level
from faafo.urls import check_database_url, check_transport_url

# What only the API may hold; what neither child may inherit from the caller by accident.
_API_ONLY = ("FAAFO_CLIENT_TOKEN", "FAAFO_DATABASE_URL")
_TOKENS = ("FAAFO_CLIENT_TOKEN", "FAAFO_WORKER_TOKEN")


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type`` from a checker that raises ValueError: one-line usage errors."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__
    return parse


def usable_cores() -> int:
    """The cores this process may run on: in a container pinned to 2 of 64, that is 2."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser(
        "up",
        help="run the API, workers and the embedded queue and database on this machine",
        description="Run the whole app here: an API process, worker processes, the embedded "
        "queue and a SQLite database under --data-dir (or real servers with the URL options).",
    )
    up.add_argument("--data-dir", type=Path, default=None, help=f"default {default_data_dir()}")
    up.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="worker processes (default: one per core)",
    )
    up.add_argument("--concurrency", type=int, default=1, help="tasks each worker renders at once")
    up.add_argument(
        "--bind-port", type=_port, default=DEFAULT_PORT, help=f"API port (default {DEFAULT_PORT})"
    )
    up.add_argument(
        "--listen-address",
        default="127.0.0.1",
        help="API address (default 127.0.0.1; 0.0.0.0 or :: for every interface)",
    )
    up.add_argument(
        "--database-url",
        type=_checked(check_database_url),
        help="use this database instead of SQLite",
    )
    up.add_argument(
        "--transport-url",
        type=_checked(check_transport_url),
        help="use this queue (amqp://...) instead of the embedded one",
    )
    up.add_argument(
        "--open",
        action="store_true",
        help="no tokens: anyone who reaches the API may create, delete and deliver",
    )
    up.add_argument(
        "--autoscale",
        metavar="MIN:MAX",
        type=_bounds,
        help="size the worker pool by the backlog, between MIN and MAX workers",
    )
    up.add_argument(
        "--autoscale-tasks-per-worker",
        type=float,
        default=50.0,
        help="backlog tasks one worker should carry (default 50)",
    )
    up.add_argument(
        "--autoscale-down-cooldown",
        type=float,
        default=30.0,
        help="seconds of low backlog before shrinking (default 30)",
    )
    up.add_argument(
        "--autoscale-metrics-port",
        type=_port,
        default=0,
        help="serve the autoscaler's Prometheus metrics on this port (default: not served)",
    )
    up.add_argument(
        "--log-format", type=_checked(check_log_format), default="text", help="text or json"
    )
    up.add_argument(
        "--log-level",
        type=_checked(check_log_level),
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    up.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0..65535)")
    return port


def _bounds(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    try:
        bounds = (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN:MAX") from None
    if not 0 <= bounds[0] <= bounds[1] or bounds[1] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return bounds


def child_environments(
    base: dict[str, str],
    tokens: dict[str, str] | None,
    database_url: str | None,
    transport_url: str | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The API's and the workers' environments, built from ``base`` (the caller's).

    ``tokens`` None (``--open``): no token at all, even one the caller had exported.
    """
    api = {k: v for k, v in base.items() if tokens is not None or k not in _TOKENS}
    if tokens is not None:
        api["FAAFO_CLIENT_TOKEN"] = tokens["client_token"]
        api["FAAFO_WORKER_TOKEN"] = tokens["worker_token"]
    if database_url:
        api["FAAFO_DATABASE_URL"] = database_url
    if transport_url:
        api["FAAFO_TRANSPORT_URL"] = transport_url
    workers = {k: v for k, v in api.items() if k not in _API_ONLY}
    return api, workers


def _wait_ready(url: str, processes: list, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p is not None and p.poll() is not None for p in processes):
            return False
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def load_or_create_tokens(data_dir: Path) -> dict[str, str]:
    """Tokens kept with the data, so a restart (and a browser that stored one) keeps working."""
    path = data_dir / "tokens.json"
    try:
        tokens = json.loads(path.read_text())
        if tokens.get("client_token") and tokens.get("worker_token"):
            return tokens
    except (OSError, ValueError):
        pass
    tokens = {"client_token": secrets.token_urlsafe(32), "worker_token": secrets.token_urlsafe(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(tokens, out)
    return tokens


def run(args: argparse.Namespace) -> int:
    from faafo import logs
    from faafo.launcher.supervisor import Supervisor

    logs.setup("up", args.log_level, args.log_format)

    if args.workers < 0 or args.concurrency < 1:
        print("faafo: error: --workers must be >= 0 and --concurrency >= 1", file=sys.stderr)
        return 2
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"faafo: error: cannot create the data directory {data_dir}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 1
    url = public_url(args.listen_address, args.bind_port)
    endpoint = worker_endpoint(args.listen_address, args.bind_port)
    why_not = can_listen(args.listen_address, args.bind_port)
    if why_not:
        print(
            f"faafo: error: cannot listen on {url_host(args.listen_address)}:{args.bind_port}: "
            f"{why_not}",
            file=sys.stderr,
        )
        return 1
    common = [
        "--data-dir",
        str(data_dir),
        "--log-format",
        args.log_format,
        "--log-level",
        args.log_level,
    ]
    api_argv = [
        sys.executable,
        "-m",
        "faafo.api.main",
        *common,
        "--listen-address",
        args.listen_address.strip("[]"),
        "--bind-port",
        str(args.bind_port),
    ]
    worker_argv = [
        sys.executable,
        "-m",
        "faafo.worker.main",
        *common,
        "--endpoint-url",
        endpoint,
        "--concurrency",
        str(args.concurrency),
    ]
    tokens = None
    if not args.open:
        try:
            tokens = load_or_create_tokens(data_dir)
        except OSError as error:
            print(
                f"faafo: error: cannot keep the tokens in {data_dir}: {error.strerror or error}",
                file=sys.stderr,
            )
            return 1
        from faafo.client import credentials

        credentials.remember(url, tokens["client_token"])
    env, worker_env = child_environments(
        dict(os.environ), tokens, args.database_url, args.transport_url
    )
    supervisor = Supervisor(
        api_argv,
        worker_argv,
        worker_name_prefix=socket.gethostname(),
        env=env,
        worker_env=worker_env,
    )
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    autoscaler = None
    if args.autoscale:
        from faafo.autoscale.backends import LocalWorkers
        from faafo.autoscale.controller import Autoscaler, api_backlog
        from faafo.autoscale.policy import Policy

        low, high = args.autoscale
        policy = Policy(
            minimum=low,
            maximum=high,
            tasks_per_worker=args.autoscale_tasks_per_worker,
            down_cooldown=args.autoscale_down_cooldown,
        )
        autoscaler = Autoscaler(
            policy,
            LocalWorkers(supervisor),
            api_backlog(endpoint, env.get("FAAFO_CLIENT_TOKEN")),
        )
        if args.autoscale_metrics_port:
            from prometheus_client import start_http_server

            # The API process has its own registry; the decisions live in this one,
            # served beside the API (same listen address).
            try:
                start_http_server(
                    args.autoscale_metrics_port,
                    addr=args.listen_address.strip("[]"),
                    registry=autoscaler.metrics.registry,
                )
            except OSError as error:
                port = args.autoscale_metrics_port
                print(f"faafo: error: --autoscale-metrics-port {port}: {error}", file=sys.stderr)
                return 1
        args.workers = low
    supervisor.start(args.workers)
    assert supervisor.api is not None
    if not _wait_ready(endpoint, [supervisor.api.process]):
        print("faafo: error: the API did not become ready; see the log above", file=sys.stderr)
        supervisor.stop()
        return 1
    print(
        f"faafo is running at {url}  (data in {data_dir}; {args.workers} worker(s); "
        "Ctrl-C to stop)",
        flush=True,
    )
    next_scale = 0.0
    while not stop.wait(0.5):
        supervisor.check()
        if autoscaler is not None and time.monotonic() >= next_scale:
            autoscaler.step()
            next_scale = time.monotonic() + autoscaler.interval
    print(
        "faafo: stopping (workers finish or give back their tasks)...", file=sys.stderr, flush=True
    )
    supervisor.stop()
    return 0
