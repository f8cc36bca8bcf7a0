"""The reconciler's queries on every back end: lost messages counted by publish group,
and banded fractals whose assembly nobody published."""

from __future__ import annotations

from datetime import timedelta

from faafo.store import bands
from faafo.store import fractals as store

GRACE = timedelta(seconds=5)


def row(uuid: str, height: int = 8) -> dict:
    return {
        "uuid": uuid,
        "width": 8,
        "height": height,
        "iterations": 8,
        "xa": -1.0,
        "xb": 1.0,
        "ya": -1.0,
        "yb": 1.0,
        "kind": "julia",
        "palette": "faafo",
        "seed": 1,
    }


def published(database, groups: dict[str, str], seconds_ago: float) -> None:
    with database.session() as session:
        store.mark_published(session, groups, store.utcnow() - timedelta(seconds=seconds_ago))


def lost(database, ready: int) -> list[str]:
    with database.reading() as session:
        return sorted(
            r.uuid for r in store.lost_messages(session, store.utcnow(), GRACE, ready, 100)
        )


def test_lost_bundles_are_counted_per_message_and_only_when_overtaken(database):
    with database.session() as session:
        store.insert_tasks(
            session, [row(u) for u in ("a1", "a2", "b1", "b2", "c", "head")], store.utcnow()
        )
    published(database, {"a1": "ga", "a2": "ga"}, 60)  # one bundle, the oldest
    published(database, {"b1": "gb", "b2": "gb"}, 40)
    published(database, {"head": "gh"}, 30)
    published(database, {"c": "gc"}, 20)
    assert lost(database, ready=4) == []
    assert lost(database, ready=3) == [], "one missing, but nothing claimed: nothing overtaken"
    assert lost(database, ready=0) == ["a1", "a2", "b1", "b2", "c", "head"], "empty queue"
    with database.session() as session:
        store.claim(session, ["head"], "w", store.utcnow(), timedelta(seconds=60), 5)
    # Needed now: ga, gb, gc. With two ready one is gone: the oldest overtaken one.
    assert lost(database, ready=3) == []
    assert lost(database, ready=2) == ["a1", "a2"]
    # gc was published after the head: waiting its turn, not a candidate...
    assert lost(database, ready=1) == ["a1", "a2", "b1", "b2"]
    # ... unless the queue is empty.
    assert lost(database, ready=0) == ["a1", "a2", "b1", "b2", "c"]
    with database.session() as session:
        groups = {r.uuid: r.publish_group for r in store.get_many(session, ["a1", "a2", "c"])}
    assert groups == {"a1": "ga", "a2": "ga", "c": "gc"}


def test_a_banded_task_needs_a_message_per_missing_band(database):
    with database.session() as session:
        store.insert_tasks(session, [row("big", height=24), row("head")], store.utcnow())
        bands.split(session, "big", [(0, 8), (8, 16), (16, 24)])
    published(database, {"big": "g-big"}, 60)
    published(database, {"head": "g-head"}, 30)
    with database.session() as session:
        store.claim(session, ["head"], "w", store.utcnow(), timedelta(seconds=60), 5)
    assert lost(database, ready=3) == [], "its three band messages are there"
    assert lost(database, ready=2) == ["big"]


def test_fractals_with_every_band_stored_and_no_assembly_are_found(database):
    with database.session() as session:
        store.insert_tasks(session, [row("done-bands", 16), row("half", 16)], store.utcnow())
        bands.split(session, "done-bands", [(0, 8), (8, 16)])
        bands.split(session, "half", [(0, 8), (8, 16)])
    for uuid, indexes in (("done-bands", (0, 1)), ("half", (0,))):
        for index in indexes:
            with database.session() as session:
                claimed = bands.claim_band(
                    session, uuid, index, "w", store.utcnow(), timedelta(seconds=60), 5
                )
                assert claimed.render
                bands.store_band(session, uuid, index, b"png", 0.1, "w")
    with database.reading() as session:
        assert bands.unassembled(session, 10) == ["done-bands"]
    with database.session() as session:
        assert bands.mark_assembly_published(session, "done-bands", store.utcnow())
    with database.reading() as session:
        assert bands.unassembled(session, 10) == []
