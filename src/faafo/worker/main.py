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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = service_settings(WorkerSettings, args)
    except ConfigurationError as error:
        print(f"faafo-worker: error: {error}", file=sys.stderr)
        return 2
    logs.setup("worker", settings.log_level, settings.log_format)

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
