"""Read-only queries only the pages need: every worker's name, and which tasks wait in a bundle.

Kept beside the pages rather than in the store: they shape what a person
sees (a filter's options, a card's label), not the data's rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faafo.store.models import FAILED, RUNNING, Fractal


def worker_names(session: Session) -> list[str]:
    """Every worker that ever made a fractal, or holds or failed one, sorted.

    The names that made fractals come from the index on ``generated_by`` by
    a loose index scan (a recursive query that jumps from one name to the
    next), so the cost follows the number of workers, not of fractals: a
    plain ``SELECT DISTINCT`` reads every entry of the index on PostgreSQL
    and SQLite. Running and failed tasks name their worker in ``worker``;
    those are few, read through the status index.
    """
    made = Fractal.generated_by
    first = select(func.min(made).label("name")).cte("names", recursive=True)
    following = select(select(func.min(made)).where(made > first.c.name).scalar_subquery()).where(
        first.c.name.is_not(None)
    )
    names = first.union_all(following)
    found = set(session.scalars(select(names.c.name).where(names.c.name.is_not(None))))
    held = (
        select(Fractal.worker)
        .where(Fractal.status.in_((RUNNING, FAILED)), Fractal.worker.is_not(None))
        .distinct()
    )
    found.update(session.scalars(held))
    return sorted(found)


def claim_sizes(session: Session, rows: Sequence[Fractal]) -> dict[str, int]:
    """For each running row: how many running tasks its worker claimed in the same claim.

    A worker claims a whole bundle message at once and renders its tasks one
    after another, so "running" means "claimed", not "being rendered". One
    claim stamps every task with the same ``started_at``, which tells how many
    were taken together; a task claimed alone is being rendered.
    """
    running = [r for r in rows if r.status == RUNNING and r.worker and r.started_at]
    if not running:
        return {}
    query = (
        select(Fractal.worker, Fractal.started_at, func.count())
        .where(
            Fractal.status == RUNNING,
            Fractal.worker.in_({r.worker for r in running}),
            Fractal.started_at.in_({r.started_at for r in running}),
        )
        .group_by(Fractal.worker, Fractal.started_at)
    )
    sizes = {(worker, started): int(n) for worker, started, n in session.execute(query)}
    return {r.uuid: sizes.get((r.worker, r.started_at), 1) for r in running}
