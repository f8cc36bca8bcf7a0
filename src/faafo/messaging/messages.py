"""The task message: JSON, one task as the original's field set, or a list of tasks.

A single task is the original body (``uuid``, ``width``, ``height``,
``iterations``, ``xa``, ``xb``, ``ya``, ``yb``) plus what our workers need to
render it reproducibly (``kind``, ``palette``, ``c_real``/``c_imag`` or
``seed``). Small tasks created together travel as one JSON list (a bundle),
so a thousand 64x64 tasks are a few dozen messages, claims and uploads rather
than thousands; each bundle is bounded in cost, so prefetch-per-slot still
spreads the work evenly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_BUNDLE_TASKS = 10_000
"""The most tasks one message may carry: the API claims at most this many uuids at once,
so a longer bundle could never be claimed (it is poison, not a message to retry)."""


class PoisonMessage(ValueError):
    """A message no worker can ever process; it goes to the dead queue."""


@dataclass(frozen=True)
class TaskMessage:
    uuid: str
    width: int
    height: int
    iterations: int
    xa: float
    xb: float
    ya: float
    yb: float
    kind: str = "julia"
    palette: str = "faafo"
    c_real: float | None = None
    c_imag: float | None = None
    seed: int | None = None
    band: int | None = None  # render only this band (rows y0..y1-1) of a huge task
    y0: int | None = None
    y1: int | None = None
    assemble: int | None = None  # all of this many bands are stored: assemble them

    @property
    def cost(self) -> int:
        rows = self.y1 - self.y0 if self.band is not None and self.y0 is not None else self.height
        return self.width * rows * max(self.iterations, 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_INT_FIELDS = ("width", "height", "iterations")
_FLOAT_FIELDS = ("xa", "xb", "ya", "yb")


def task_from_mapping(data: Mapping[str, Any]) -> TaskMessage:
    """Validate one task of a message; anything malformed is poison."""
    if not isinstance(data, Mapping):
        raise PoisonMessage("a task must be a JSON object")
    try:
        uuid = data["uuid"]
        if not isinstance(uuid, str) or not uuid or len(uuid) > 36:
            raise PoisonMessage("bad uuid")
        fields: dict[str, Any] = {"uuid": uuid}
        for name in _INT_FIELDS:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PoisonMessage(f"bad {name}: {value!r}")
            fields[name] = value
        for name in _FLOAT_FIELDS:
            fields[name] = _finite(data[name], name)
    except KeyError as missing:
        raise PoisonMessage(f"missing field {missing}") from None
    for name in ("c_real", "c_imag"):
        if data.get(name) is not None:
            fields[name] = _finite(data[name], name)
    if data.get("seed") is not None:
        if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
            raise PoisonMessage("bad seed")
        fields["seed"] = data["seed"]
    if data.get("band") is not None:
        for name in ("band", "y0", "y1"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PoisonMessage(f"bad {name}: {value!r}")
            fields[name] = value
        if not fields["y0"] < fields["y1"] <= fields["height"]:
            raise PoisonMessage("band rows outside the image")
    if data.get("assemble") is not None:
        value = data["assemble"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PoisonMessage(f"bad assemble: {value!r}")
        fields["assemble"] = value
    for name in ("kind", "palette"):
        if data.get(name) is not None:
            if not isinstance(data[name], str):
                raise PoisonMessage(f"bad {name}")
            fields[name] = data[name]
    return TaskMessage(**fields)


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PoisonMessage(f"bad {name}: {value!r}")
    return float(value)


def decode(body: bytes | str | Any) -> list[TaskMessage]:
    """The tasks a message carries (one, or a bundle)."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise PoisonMessage(f"not JSON: {error}") from None
        except RecursionError:
            raise PoisonMessage("not JSON: nested too deeply") from None
    if isinstance(body, list):
        if not body:
            raise PoisonMessage("empty bundle")
        if len(body) > MAX_BUNDLE_TASKS:
            raise PoisonMessage(
                f"a bundle of {len(body)} tasks exceeds the limit of {MAX_BUNDLE_TASKS} "
                "(the most one claim may name)"
            )
        return [_bundled_task(index, item) for index, item in enumerate(body)]
    return [task_from_mapping(body)]


def _bundled_task(index: int, item: Any) -> TaskMessage:
    """One task of a bundle; a poison reason says which one, so its failure is explained."""
    try:
        return task_from_mapping(item)
    except PoisonMessage as error:
        raise PoisonMessage(f"task {index} of the bundle: {error}") from None


def named_uuids(body: bytes | str | Any) -> list[str]:
    """The task uuids a message names, as far as they can be read, even when it is poison.

    A worker that cannot use a message still fails the tasks it names (with the
    reason), so none of them waits forever for a render that will never come.
    """
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return []
    items = body if isinstance(body, list) else [body]
    found: dict[str, None] = {}
    for item in items:
        uuid = item.get("uuid") if isinstance(item, dict) else None
        if isinstance(uuid, str) and 0 < len(uuid) <= 36:
            found[uuid] = None
    return list(found)


def encode(tasks: list[TaskMessage]) -> str:
    payload: Any = tasks[0].to_dict() if len(tasks) == 1 else [t.to_dict() for t in tasks]
    return json.dumps(payload, separators=(",", ":"))


def bundle(
    tasks: Iterable[TaskMessage], max_cost: int, max_tasks: int
) -> Iterator[list[TaskMessage]]:
    """Group consecutive small tasks into messages of bounded cost; big tasks travel alone.

    ``max_tasks`` is capped at :data:`MAX_BUNDLE_TASKS`: a longer bundle could not be claimed.
    """
    max_tasks = min(max_tasks, MAX_BUNDLE_TASKS)
    current: list[TaskMessage] = []
    current_cost = 0
    for task in tasks:
        if task.band is not None or task.assemble is not None:
            if current:
                yield current
                current, current_cost = [], 0
            yield [task]
            continue
        if current and (current_cost + task.cost > max_cost or len(current) >= max_tasks):
            yield current
            current, current_cost = [], 0
        current.append(task)
        current_cost += task.cost
    if current:
        yield current
