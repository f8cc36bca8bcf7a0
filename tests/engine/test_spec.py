"""FractalSpec validates once, with one-line reasons, and normalises types."""

from __future__ import annotations

import pytest

from faafo.engine import FractalSpec

GOOD = {"width": 4, "height": 3, "iterations": 10, "xa": -1, "xb": 1, "ya": -1.0, "yb": 1.0}


def test_defaults_and_normalisation():
    spec = FractalSpec(**GOOD, c=1)
    assert (spec.kind, spec.palette, spec.seed) == ("julia", "faafo", None)
    assert isinstance(spec.xa, float) and spec.c == 1 + 0j and isinstance(spec.c, complex)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("width", 0, "width"), ("height", -1, "height"), ("width", 2.0, "width"),
    ("width", True, "width"), ("iterations", -1, "iterations"),
    ("iterations", 2**31, "iterations"), ("xa", float("nan"), "xa"),
    ("yb", float("inf"), "yb"), ("xb", "1", "xb"), ("kind", "newton", "kind"),
    ("palette", "plaid", "palette"), ("c", complex("nan"), "c"), ("c", "1j", "c"),
    ("seed", 1.5, "seed"),
])
def test_invalid_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        FractalSpec(**{**GOOD, field: value})


def test_frozen():
    spec = FractalSpec(**GOOD)
    with pytest.raises(AttributeError):
        spec.width = 5  # type: ignore[misc]
