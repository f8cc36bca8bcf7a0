"""The task message format: the original body, bundles, and poison detection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faafo.messaging.messages import (
    MAX_BUNDLE_TASKS,
    PoisonMessage,
    TaskMessage,
    bundle,
    decode,
    encode,
    named_uuids,
)


def make(uuid="u1", **kw):
    base = dict(uuid=uuid, width=8, height=8, iterations=10, xa=-1.0, xb=1.0, ya=-1.0, yb=1.0)
    base.update(kw)
    return TaskMessage(**base)


def test_single_task_is_the_original_json_object():
    body = json.loads(encode([make(seed=5)]))
    assert body == {
        "uuid": "u1",
        "width": 8,
        "height": 8,
        "iterations": 10,
        "xa": -1.0,
        "xb": 1.0,
        "ya": -1.0,
        "yb": 1.0,
        "kind": "julia",
        "palette": "faafo",
        "seed": 5,
    }


def test_roundtrip_bundle():
    tasks = [make(f"u{i}", c_real=0.1, c_imag=-0.2) for i in range(3)]
    assert decode(encode(tasks)) == tasks


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"42",
        b'{"uuid": "x"}',
        b'{"uuid": 3}',
        json.dumps({**make().to_dict(), "width": -5}).encode(),
        json.dumps({**make().to_dict(), "xa": "NaN"}).encode(),
        b'{"uuid":"x","width":1,"height":1,"iterations":1,"xa":NaN,"xb":1,"ya":0,"yb":1}',
        b"\xff\xfe",
    ],
)
def test_poison_is_detected(body):
    with pytest.raises(PoisonMessage):
        decode(body)


@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=60), st.integers(1, 200), st.integers(1, 10)
)
def test_bundles_are_bounded_and_keep_order(sizes, max_cost, max_tasks):
    tasks = [make(f"u{i}", width=s, height=1, iterations=1) for i, s in enumerate(sizes)]
    groups = list(bundle(tasks, max_cost, max_tasks))
    assert [t for g in groups for t in g] == tasks
    for group in groups:
        assert len(group) <= max_tasks
        assert len(group) == 1 or sum(t.cost for t in group) <= max_cost


def test_a_bundle_may_name_as_many_tasks_as_one_claim_and_no_more():
    """A longer bundle could never be claimed: it used to come back to the queue forever."""
    tasks = [make(f"u{i}").to_dict() for i in range(MAX_BUNDLE_TASKS + 1)]
    assert len(decode(json.dumps(tasks[:MAX_BUNDLE_TASKS]))) == MAX_BUNDLE_TASKS
    with pytest.raises(PoisonMessage, match=f"exceeds the limit of {MAX_BUNDLE_TASKS}"):
        decode(json.dumps(tasks))


def test_the_bundle_limit_is_the_claim_limit_of_the_api():
    from faafo.api.schemas import ClaimRequest

    limits = [
        m.max_length
        for m in ClaimRequest.model_fields["uuids"].metadata
        if hasattr(m, "max_length")
    ]
    assert limits == [MAX_BUNDLE_TASKS]


def test_bundles_never_exceed_the_claim_limit_whatever_is_asked():
    tasks = [make(f"u{i}", width=1, height=1, iterations=1) for i in range(MAX_BUNDLE_TASKS + 5)]
    groups = list(bundle(tasks, max_cost=10**12, max_tasks=10**9))
    assert [len(g) for g in groups] == [MAX_BUNDLE_TASKS, 5]


def test_a_poison_bundle_says_which_task_is_bad():
    body = json.dumps([make("a").to_dict(), {**make("b").to_dict(), "width": 0}])
    with pytest.raises(PoisonMessage, match="task 1 of the bundle: bad width: 0"):
        decode(body)


def test_deeply_nested_json_is_poison_not_a_crash():
    with pytest.raises(PoisonMessage, match="nested too deeply"):
        decode(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    ("body", "uuids"),
    [
        (json.dumps({**make("a").to_dict(), "width": -1}), ["a"]),
        (json.dumps([make("a").to_dict(), {"uuid": "b", "width": "x"}, {"uuid": "a"}]), ["a", "b"]),
        (json.dumps([{"uuid": 7}, {"uuid": ""}, {"uuid": "x" * 37}, 42, {"uuid": "ok"}]), ["ok"]),
        (b"\xff not json", []),
        (b"[" * 100_000, []),
        (b'"just a string"', []),
    ],
)
def test_the_tasks_a_poison_message_names_are_found(body, uuids):
    """So they can be failed with the reason instead of waiting forever."""
    assert named_uuids(body) == uuids
