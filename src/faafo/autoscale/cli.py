"""``faafo autoscale``: size a worker pool by the API's backlog, with a chosen back end.

``--backend local`` runs the workers itself on this machine (pointed at
``--endpoint-url`` and ``--transport-url``); ``--backend heat`` signals the
scale-up / scale-down policies of a Heat stack, found by ``--stack NAME`` (the
URLs and the group's size are read from its outputs) or given as URLs;
``--backend deploy`` sets the worker count of a ``faafo deploy`` deployment.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "autoscale", help="size the worker pool by the backlog", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("FAAFO_ENDPOINT_URL", "http://localhost:8080"),
        help="API to read the backlog from (env FAAFO_ENDPOINT_URL)",
    )
    p.add_argument("--min", type=int, default=1, dest="minimum", help="fewest workers (default 1)")
    p.add_argument("--max", type=int, default=4, dest="maximum", help="most workers (default 4)")
    p.add_argument(
        "--tasks-per-worker",
        type=float,
        default=50.0,
        help="target backlog tasks per worker (default 50)",
    )
    p.add_argument(
        "--cost-per-worker",
        type=float,
        default=2e9,
        help="target backlog pixel-iterations per worker (default 2e9)",
    )
    p.add_argument("--up-cooldown", type=float, default=5.0, help="seconds between growths")
    p.add_argument(
        "--down-cooldown",
        type=float,
        default=30.0,
        help="seconds the backlog must stay low before shrinking",
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between observations")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics here")
    p.add_argument("--backend", choices=("local", "heat", "deploy"), default="local")
    p.add_argument("--transport-url", help="local: the queue the workers consume")
    p.add_argument("--data-dir", help="local: the data directory (embedded queue)")
    p.add_argument("--stack", help="heat: the stack's name (signal URLs and size from its outputs)")
    p.add_argument("--scale-up-url", help="heat without --stack: the scale-up signal URL")
    p.add_argument("--scale-down-url", help="heat without --stack: the scale-down signal URL")
    p.add_argument("--initial", type=int, default=1, help="heat without --stack: the size now")
    p.add_argument("--os-cloud", help="heat, deploy: the clouds.yaml entry (env OS_CLOUD)")
    p.add_argument("--name", default="faafo", help="deploy: the deployment's name prefix")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


class _UsageError(Exception):
    """A combination of flags that cannot work, reported as one line."""


def _backend(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.backend == "heat":
        from faafo.autoscale.backends import HeatScalingPolicies, heat_stack_policies

        if args.stack:
            return heat_stack_policies(args.stack, args.os_cloud or os.environ.get("OS_CLOUD"))
        if not (args.scale_up_url and args.scale_down_url):
            raise _UsageError(
                "--backend heat needs --stack, or --scale-up-url and --scale-down-url"
            )
        return HeatScalingPolicies(
            args.scale_up_url,
            args.scale_down_url,
            args.initial,
            token=os.environ.get("OS_AUTH_TOKEN"),
        )
    if args.backend == "deploy":
        from faafo.deploy.scaling import DeployedWorkers

        return DeployedWorkers(cloud=args.os_cloud, name=args.name)
    from faafo.autoscale.backends import LocalWorkers
    from faafo.launcher.supervisor import Supervisor

    argv = [sys.executable, "-m", "faafo.worker.main", "--endpoint-url", args.endpoint_url]
    if args.transport_url:
        argv += ["--transport-url", args.transport_url]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    supervisor = Supervisor(None, argv, worker_name_prefix=socket.gethostname())
    supervisor.start(args.minimum)
    return LocalWorkers(supervisor)


def run(args: argparse.Namespace) -> int:
    from faafo import logs
    from faafo.autoscale.controller import AutoscaleMetrics, Autoscaler, api_backlog
    from faafo.autoscale.policy import Policy

    try:
        level = logs.check_log_level(args.log_level)
    except ValueError as error:
        print(f"faafo: error: --log-level: {error}", file=sys.stderr)
        return 2
    logs.setup("autoscale", level, args.log_format)
    try:
        policy = Policy(
            minimum=args.minimum,
            maximum=args.maximum,
            tasks_per_worker=args.tasks_per_worker,
            cost_per_worker=args.cost_per_worker,
            up_cooldown=args.up_cooldown,
            down_cooldown=args.down_cooldown,
        )
    except ValueError as error:
        print(f"faafo: error: {error}", file=sys.stderr)
        return 2
    metrics = AutoscaleMetrics()
    if args.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, registry=metrics.registry)
        except OSError as error:  # the port is taken: say so before any worker starts
            print(f"faafo: error: --metrics-port {args.metrics_port}: {error}", file=sys.stderr)
            return 1
    try:
        backend = _backend(args)
    except _UsageError as error:
        print(f"faafo: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # no such stack or deployment, cloud unreachable: one line
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"faafo: error: {args.backend} back end: {line}", file=sys.stderr)
        return 1
    from faafo.client import credentials

    token = os.environ.get("FAAFO_CLIENT_TOKEN") or credentials.lookup(args.endpoint_url)
    scaler = Autoscaler(
        policy,
        backend,
        api_backlog(args.endpoint_url, token),
        interval=args.interval,
        metrics=metrics,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if hasattr(backend, "_supervisor"):
        watcher = threading.Thread(target=_watch, args=(backend._supervisor, stop), daemon=True)
        watcher.start()
    scaler.run(stop)
    if hasattr(backend, "_supervisor"):
        backend._supervisor.stop()
    return 0


def _watch(supervisor, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    while not stop.wait(0.5):
        supervisor.check()
