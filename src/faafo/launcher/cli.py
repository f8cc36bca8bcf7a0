"""``faafo up``: the whole app on this machine with one command."""

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
from pathlib import Path

import httpx

from faafo.config import DEFAULT_PORT, default_data_dir


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
        default=os.cpu_count() or 1,
        help="worker processes (default: one per core)",
    )
    up.add_argument("--concurrency", type=int, default=1, help="tasks each worker renders at once")
    up.add_argument(
        "--bind-port", type=_port, default=DEFAULT_PORT, help=f"API port (default {DEFAULT_PORT})"
    )
    up.add_argument("--listen-address", default="127.0.0.1", help="API address (default 127.0.0.1)")
    up.add_argument("--database-url", help="use this database instead of SQLite")
    up.add_argument(
        "--transport-url", help="use this queue (amqp://...) instead of the embedded one"
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
    up.add_argument("--log-format", choices=("text", "json"), default="text")
    up.add_argument("--log-level", default="INFO")
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
    data_dir.mkdir(parents=True, exist_ok=True)
    host = (
        "localhost"
        if args.listen_address in ("127.0.0.1", "0.0.0.0", "::")
        else args.listen_address
    )
    url = f"http://{host}:{args.bind_port}"
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.listen_address, args.bind_port))
        except OSError as error:
            print(
                f"faafo: error: cannot listen on {args.listen_address}:{args.bind_port}: "
                f"{error.strerror}",
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
    if args.database_url:
        common += ["--database-url", args.database_url]
    if args.transport_url:
        common += ["--transport-url", args.transport_url]
    api_argv = [
        sys.executable,
        "-m",
        "faafo.api.main",
        *common,
        "--listen-address",
        args.listen_address,
        "--bind-port",
        str(args.bind_port),
    ]
    worker_argv = [
        sys.executable,
        "-m",
        "faafo.worker.main",
        *common,
        "--endpoint-url",
        f"http://127.0.0.1:{args.bind_port}",
        "--concurrency",
        str(args.concurrency),
    ]
    env = dict(os.environ)
    if not args.open:
        tokens = load_or_create_tokens(data_dir)
        env["FAAFO_CLIENT_TOKEN"] = tokens["client_token"]
        env["FAAFO_WORKER_TOKEN"] = tokens["worker_token"]
        from faafo.client import credentials

        credentials.remember(url, tokens["client_token"])
    supervisor = Supervisor(api_argv, worker_argv, worker_name_prefix=socket.gethostname(), env=env)
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
            policy, LocalWorkers(supervisor), api_backlog(url, env.get("FAAFO_CLIENT_TOKEN"))
        )
        args.workers = low
    supervisor.start(args.workers)
    assert supervisor.api is not None
    if not _wait_ready(url, [supervisor.api.process]):
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
