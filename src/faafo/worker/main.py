"""``faafo-worker``: render tasks from the queue and deliver them to the API."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from faafo import logs
from faafo.config import (
    ConfigurationError,
    OneLineArgumentParser,
    WorkerSettings,
    add_settings_arguments,
    service_settings,
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="faafo-worker",
        description="The faafo worker: takes tasks from the queue, renders fractals, "
        "delivers the PNGs to the API.",
    )
    add_settings_arguments(parser, WorkerSettings)
    return parser


def warm_up_kernels() -> None:
    """Load (or compile) the render kernels before taking any message.

    Otherwise the first task of every worker process paid for it: ~0.35 s to load
    them from the on-disk cache, a few seconds to compile them on a fresh machine.
    A failure here is logged, not fatal: the renders then report their own errors.
    """
    from faafo.engine.warmup import warm_up

    try:
        done = warm_up()
    except Exception as error:  # the worker can still take (and fail) tasks
        log.warning("render kernels not warmed up: %s: %s", error.__class__.__name__, error)
        return
    log.info(
        "render kernels ready in %.2fs (%d loaded from the disk cache, %d compiled)",
        done.seconds,
        done.cache_hits,
        done.cache_misses,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = service_settings(WorkerSettings, args)
    except ConfigurationError as error:
        print(f"faafo-worker: error: {error}", file=sys.stderr)
        return 2
    logs.setup("worker", settings.log_level, settings.log_format)
    if getattr(args, "worker_token", None):  # never log the value
        log.warning(
            "--worker-token was given on the command line, where every user of this "
            "machine can read it (ps); set FAAFO_WORKER_TOKEN or use the configuration file"
        )

    from faafo.worker.api_client import WorkerApi
    from faafo.worker.runner import Worker, default_name

    name = settings.name or default_name()
    endpoints = [e.strip() for e in settings.endpoint_url.split(",") if e.strip()]
    api = WorkerApi(
        endpoints,
        name,
        timeout=settings.upload_timeout,
        retry_seconds=settings.upload_retry_seconds,
        token=settings.worker_token.get_secret_value() or None,
    )
    worker = Worker(settings, api)
    if settings.metrics_port:
        worker.metrics.serve(settings.metrics_port)

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the tasks in hand, then stopping", signum)
        worker.request_stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    warm_up_kernels()
    log.info("worker %s delivering to %s", name, ", ".join(endpoints))
    try:
        worker.run()
    finally:
        api.close()
    log.info("worker %s stopped after %d message(s)", name, worker.processed)
    logging.shutdown()
    # A render given back to the queue may still be running in a slot thread:
    # leave without waiting for it (its message is already back on the queue).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
