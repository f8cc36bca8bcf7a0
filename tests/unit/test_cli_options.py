"""``faafo``'s options: where the endpoint comes from, and what ``create`` sends.

The random ranges are the original client's (README "Commands"); they are
written out here rather than read from the code, so a changed default fails.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faafo import config
from faafo.client import cli
from faafo.client.random_tasks import random_task, task_chunks, task_count
from support.processes import free_port

REFERENCE = {
    "width": (256, 1024),
    "height": (256, 1024),
    "iterations": (128, 512),
    "xa": (-1.0, -4.0),
    "xb": (1.0, 4.0),
    "ya": (-0.5, -3.0),
    "yb": (0.5, 3.0),
}
INTEGERS = ("width", "height", "iterations")


@pytest.fixture(autouse=True)
def _no_user_configuration(monkeypatch, tmp_path):
    """No endpoint from this machine's environment, system INI file or stored tokens."""
    monkeypatch.delenv("FAAFO_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("FAAFO_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent" / "faafo.conf")


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return cli.build_parser().parse_args(list(argv))


def within(value: float, bounds: tuple[float, float]) -> bool:
    return min(bounds) <= value <= max(bounds)


# -- the endpoint -------------------------------------------------------------------


def test_the_default_endpoint_is_localhost_8080():
    assert cli.endpoint_of(parse("list"), {}) == "http://localhost:8080"


def write(tmp_path, name: str, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return path


def test_endpoint_precedence_flag_then_environment_then_ini_then_default(tmp_path):
    ini = write(
        tmp_path,
        "faafo.conf",
        "[DEFAULT]\nendpoint_url = http://default-section\n"
        "[client]\nendpoint_url = http://client-section\n",
    )
    only_default = write(tmp_path, "d.conf", "[DEFAULT]\nendpoint_url = http://default-section\n")
    env = {"FAAFO_ENDPOINT_URL": "http://from-env"}
    assert cli.endpoint_of(parse("--config-file", str(ini), "list"), {}) == "http://client-section"
    assert cli.endpoint_of(parse("list", "--config-file", str(only_default)), {}) == (
        "http://default-section"
    )
    assert cli.endpoint_of(parse("--config-file", str(ini), "list"), env) == "http://from-env"
    flagged = parse("--config-file", str(ini), "list", "--endpoint-url", "http://from-flag")
    assert cli.endpoint_of(flagged, env) == "http://from-flag"
    empty = write(tmp_path, "empty.conf", "[client]\n")
    assert cli.endpoint_of(parse("--config-file", str(empty), "list"), {}) == (
        "http://localhost:8080"
    )


def test_the_system_ini_file_is_read_when_present_and_a_given_one_wins(tmp_path, monkeypatch):
    system = write(tmp_path, "system.conf", "[DEFAULT]\nendpoint_url = http://system\n")
    mine = write(tmp_path, "mine.conf", "[client]\nendpoint_url = http://mine\n")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", system)
    assert cli.endpoint_of(parse("list"), {}) == "http://system"
    assert cli.endpoint_of(parse("--config-file", str(mine), "list"), {}) == "http://mine"


def test_main_talks_to_the_endpoint_each_layer_names(tmp_path, monkeypatch, capsys):
    """Through ``main``: each layer's endpoint (a port nobody listens on) is the one tried."""
    ports = {layer: free_port() for layer in ("ini", "env", "flag")}
    ini = write(
        tmp_path, "faafo.conf", f"[client]\nendpoint_url = http://127.0.0.1:{ports['ini']}\n"
    )
    argv = ["--config-file", str(ini), "list"]

    def tried() -> str:
        assert cli.main(argv) == 1
        return capsys.readouterr().err

    assert f"cannot reach the faafo API at http://127.0.0.1:{ports['ini']}" in tried()
    monkeypatch.setenv("FAAFO_ENDPOINT_URL", f"http://127.0.0.1:{ports['env']}")
    assert f"at http://127.0.0.1:{ports['env']} " in tried()
    argv += ["--endpoint-url", f"http://127.0.0.1:{ports['flag']}"]
    assert f"at http://127.0.0.1:{ports['flag']} " in tried()


@pytest.mark.parametrize(
    ("text", "words"),
    [(None, "cannot read"), ("endpoint_url = http://x\n", "section")],
    ids=["missing", "no section"],
)
def test_a_bad_config_file_is_one_line(tmp_path, capsys, text, words):
    path = tmp_path / "faafo.conf"
    if text is not None:
        path.write_text(text)
    code = cli.main(["--config-file", str(path), "list"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("faafo: error: ") and words in err, err
    assert str(path) in err


# -- create: ranges, defaults, flags ----------------------------------------------------


def test_create_defaults_are_the_reference_ranges():
    args = parse("create")
    options = cli._options(args)
    assert options.bounds == REFERENCE
    assert all(value is None for value in options.fixed.values())
    assert (args.min_tasks, args.max_tasks, args.tasks) == (1, 10, None)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_default_random_tasks_stay_in_the_reference_ranges(seed):
    rng = random.Random(seed)
    args = parse("create")
    task = random_task(cli._options(args), rng)
    for name, bounds in REFERENCE.items():
        assert within(task[name], bounds), (name, task[name])
        assert isinstance(task[name], int if name in INTEGERS else float)
    assert 1 <= task_count(args.tasks, args.min_tasks, args.max_tasks, rng) <= 10


def test_default_random_tasks_spread_over_the_whole_range():
    rng = random.Random(7)
    options = cli._options(parse("create"))
    tasks = [random_task(options, rng) for _ in range(400)]
    for name, (low, high) in REFERENCE.items():
        values = [task[name] for task in tasks]
        quarter = abs(high - low) / 4
        assert min(values) < min(low, high) + quarter and max(values) > max(low, high) - quarter
    counts = {task_count(None, 1, 10, rng) for _ in range(400)}
    assert counts == set(range(1, 11))


def _bound_pairs():  # type: ignore[no-untyped-def]
    integers = st.integers(min_value=1, max_value=5000).map(str)
    floats = st.floats(min_value=-50, max_value=50, allow_nan=False).map(repr)
    return st.sampled_from(list(REFERENCE)).flatmap(
        lambda name: st.tuples(st.just(name), *(2 * [integers if name in INTEGERS else floats]))
    )


@settings(max_examples=300, deadline=None)
@given(pair=_bound_pairs(), seed=st.integers(min_value=0, max_value=2**32))
def test_each_min_max_pair_is_honoured(pair, seed):
    name, low, high = pair
    args = parse("create", f"--min-{name}={low}", f"--max-{name}={high}")
    task = random_task(cli._options(args), random.Random(seed))
    assert within(task[name], (float(low), float(high))), (name, low, high, task[name])
    for other, bounds in REFERENCE.items():
        if other != name:
            assert within(task[other], bounds)


@settings(max_examples=100, deadline=None)
@given(
    low=st.integers(min_value=1, max_value=50),
    high=st.integers(min_value=1, max_value=50),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_min_max_tasks_are_honoured_and_tasks_wins(low, high, seed):
    args = parse("create", "--min-tasks", str(low), "--max-tasks", str(high))
    count = task_count(args.tasks, args.min_tasks, args.max_tasks, random.Random(seed))
    assert min(low, high) <= count <= max(low, high)
    args = parse("create", "--tasks", "77", "--min-tasks", str(low), "--max-tasks", str(high))
    assert task_count(args.tasks, args.min_tasks, args.max_tasks, random.Random(seed)) == 77


def test_fixed_values_and_extras_are_in_every_task():
    args = parse(
        "create",
        "--width",
        "300",
        "--xa",
        "-2.5",
        "--kind",
        "mandelbrot",
        "--palette",
        "fire",
        "--c-real",
        "0.25",
        "--c-imag",
        "-0.5",
        "--seed",
        "9",
    )
    chunks = list(task_chunks(cli._options(args), 3, random.Random(1), "b", 500))
    assert len(chunks) == 1
    for task in chunks[0]:
        assert (task["width"], task["xa"]) == (300, -2.5)
        assert (task["kind"], task["palette"], task["seed"]) == ("mandelbrot", "fire", 9)
        assert (task["c_real"], task["c_imag"]) == (0.25, -0.5)


def test_tasks_are_built_a_request_at_a_time_with_fresh_uuids_and_one_batch():
    options = cli._options(parse("create"))
    chunks = list(task_chunks(options, 1200, random.Random(2), "the-batch", cli.REQUEST_CHUNK))
    assert [len(chunk) for chunk in chunks] == [500, 500, 200]
    tasks = [task for chunk in chunks for task in chunk]
    assert len({task["uuid"] for task in tasks}) == 1200
    assert {task["batch"] for task in tasks} == {"the-batch"}
