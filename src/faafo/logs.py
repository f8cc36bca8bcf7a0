"""Logging set-up shared by every service: plain text by default, or one JSON object a line.

A task's uuid travels in a context variable, so every line logged while a
task is handled carries it and one task can be followed across hosts.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator

current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("task", default=None)


@contextlib.contextmanager
def task_context(uuid: str | None) -> Iterator[None]:
    """Every line logged inside carries this task's uuid."""
    token = current_task.set(uuid)
    try:
        yield
    finally:
        current_task.reset(token)


class _TaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.task = current_task.get()
        record.task_suffix = f" [task {record.task}]" if record.task else ""
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task = getattr(record, "task", None)
        if task:
            entry["task"] = task
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup(service: str, level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, at the start of a service's main()."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TaskFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s%(task_suffix)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "amqp", "kombu", "alembic.runtime.plugins", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
