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
from collections.abc import Iterable, Iterator

current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("task", default=None)
current_tasks: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("tasks", default=())

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")


def check_log_level(level: str) -> str:
    """The level's canonical name (any case accepted), or ValueError listing the valid ones.

    logging itself would raise only later, from ``setLevel``, with a traceback.
    """
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    return name


def check_log_format(fmt: str) -> str:
    """``text`` or ``json`` (any case accepted), or ValueError: never a silent fallback."""
    name = str(fmt).strip().lower()
    if name not in FORMATS:
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    return name


@contextlib.contextmanager
def task_context(uuid: str | None) -> Iterator[None]:
    """Every line logged inside carries this task's uuid."""
    token = current_task.set(uuid)
    try:
        yield
    finally:
        current_task.reset(token)


@contextlib.contextmanager
def tasks_context(uuids: Iterable[str]) -> Iterator[None]:
    """Lines logged inside concern these tasks (a bundle): one uuid is ``task``, more ``tasks``."""
    uuids = tuple(uuids)
    if len(uuids) == 1:
        with task_context(uuids[0]):
            yield
        return
    token = current_tasks.set(uuids)
    try:
        yield
    finally:
        current_tasks.reset(token)


class _TaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.task = current_task.get()
        record.tasks = None if record.task else current_tasks.get() or None
        if record.task:
            record.task_suffix = f" [task {record.task}]"
        elif record.tasks:
            more = len(record.tasks) - 3
            shown = ", ".join(record.tasks[:3]) + (f" and {more} more" if more > 0 else "")
            record.task_suffix = f" [tasks {shown}]"
        else:
            record.task_suffix = ""
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
        tasks = getattr(record, "tasks", None)
        if tasks:
            entry["tasks"] = list(tasks)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup(service: str, level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, at the start of a service's main().

    A bad ``level`` or ``fmt`` raises ValueError before anything is changed.
    """
    level, fmt = check_log_level(level), check_log_format(fmt)
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
    root.setLevel(level)
    for noisy in ("uvicorn.access", "amqp", "kombu", "alembic.runtime.plugins", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
