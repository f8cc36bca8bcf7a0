"""The task message format: the original body, bundles, and poison detection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faafo.messaging.messages import PoisonMessage, TaskMessage, bundle, decode, encode


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
