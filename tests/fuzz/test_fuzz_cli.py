"""Bad input on the command line (issue 5, point 3): every bad argument to ``faafo`` (and
to ``faafo-api`` / ``faafo-worker``) is one clear line on stderr and a non-zero exit,
never a traceback -- whether argparse, the client or the API refuses it.

The table runs ``main()`` in this process (milliseconds a case) against a real API
process; a few cases run the installed entry point as a real process too; then
hypothesis throws random arguments at it.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.processes import free_port, start_api

CLIENT_TOKEN = "client-" + uuidlib.uuid4().hex
WORKER_TOKEN = "worker-" + uuidlib.uuid4().hex


@dataclass
class Api:
    url: str
    port: int
    queued: str
    done: str
    base: Path


def tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("cli")
    service, port, url = start_api(
        "api-cli",
        base,
        "--client-token",
        CLIENT_TOKEN,
        "--worker-token",
        WORKER_TOKEN,
    )
    try:
        client = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
        task = {"width": 4, "height": 3, "iterations": 8, "xa": -1, "xb": 1, "ya": -1, "yb": 1}
        queued, done = (
            httpx.post(f"{url}/v1/fractal", json=task, headers=client).json()["uuid"]
            for _ in range(2)
        )
        png = tiny_png()
        delivered = httpx.put(
            f"{url}/v1/fractal/{done}",
            content=png,
            params={
                "checksum": hashlib.sha256(png).hexdigest(),
                "duration": 0.1,
                "generated_by": "test",
            },
            headers={"Authorization": f"Bearer {WORKER_TOKEN}", "content-type": "image/png"},
        )
        assert delivered.json()["result"] == "stored", delivered.text
        yield Api(url, port, queued, done, base)
    finally:
        service.stop()


@pytest.fixture
def cli_env(api, monkeypatch, tmp_path):
    """The environment a user's shell would give: endpoint and token, no stored credentials."""
    monkeypatch.setenv("FAAFO_ENDPOINT_URL", api.url)
    monkeypatch.setenv("FAAFO_CLIENT_TOKEN", CLIENT_TOKEN)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return api


def run_main(main, argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``main(argv)`` as the entry point runs it; an escaping exception is a traceback."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else 1
    except BaseException as error:  # what the user would see as a traceback
        out, err = capsys.readouterr()
        return -1, out, err + f"\nTraceback: {error.__class__.__name__}: {error}"
    out, err = capsys.readouterr()
    return code or 0, out, err


def assert_one_clear_line(code: int, err: str, words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, -1), f"exit {code}: {err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    assert "error" in lines[0], lines[0]
    assert words.lower() in lines[0].lower(), f"{words!r} not in {lines[0]!r}"


MISSING = str(uuidlib.uuid4())

# Placeholders, filled in per test: {queued} {done} {missing} {tmp} {port} {dead}.
FAAFO_CASES = [
    (["create", "--width", "0"], "at least 1"),
    (["create", "--width", "abc"], "whole number"),
    (["create", "--height", "1.5"], "whole number"),
    (["create", "--tasks", "-1"], "at least 1"),
    (["create", "--iterations", ""], "whole number"),
    (["create", "--xa", "nan"], "finite"),
    (["create", "--yb=-inf"], "finite"),
    (["create", "--xa", "1e400"], "finite"),
    (["create", "--ya", "one"], "not a number"),
    (["create", "--c-real", "0.3"], "both"),
    (["create", "--seed", "abc"], "invalid int"),
    (["create", "--bogus"], "unrecognized"),
    (["create", "--tasks"], "expected one argument"),
    (["show", "not-a-uuid"], "not a valid UUID"),
    (["show", "{missing}"], "not found"),
    (["get", "{missing}"], "not found"),
    (["get", "{queued}"], "queued"),
    (["get", "{done}", "-o", "{tmp}/no-such-dir/x.png"], "cannot write"),
    (["delete", "{missing}"], "not found"),
    (["delete"], "required"),
    (["list", "--status", "lost"], "invalid choice"),
    (["list", "--batch", "b" * 40], "batch"),
    (["list", "--generated-by", "w" * 300], "generated_by"),
    (["get", "{done}", "-o", "-", "--json"], "stdout"),
    (["--config-file", "{tmp}/missing.conf", "list"], "cannot read"),
    (["list", "--config-file", "{tmp}"], "directory"),
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["--endpoint-url", "notaurl", "list"], "notaurl"),
    (["--endpoint-url", "http://127.0.0.1:{dead}", "list"], "cannot reach"),
    (["--endpoint-url", "http://[::1", "list"], "endpoint"),
    (["up", "--workers", "-1", "--data-dir", "{tmp}/up"], "--workers"),
    pytest.param(
        ["up", "--bind-port", "99999", "--data-dir", "{tmp}/up"],
        "port",
    ),
    (["up", "--bind-port", "http"], "not a port number"),
    (["up", "--autoscale", "5:2"], "MIN"),
    (["up", "--bind-port", "{port}", "--data-dir", "{tmp}/up"], "cannot listen"),
    (["render", "--width", "0", "-o", "{tmp}/x.png"], "width"),
    (["render", "--width", "8", "--height", "8", "-o", "{tmp}/nope/x.png"], "cannot write"),
    (["autoscale", "--min", "5", "--max", "2"], "minimum"),
    # Refused by the API rather than by argparse.
    pytest.param(["create", "--tasks", "1", "--kind", "quaternion"], "kind"),
    pytest.param(
        ["create", "--tasks", "1", "--width", "100000", "--height", "100000"],
        "pixels",
    ),
    pytest.param(["create", "--tasks", "1", "--iterations", "99999999"], "iterations"),
    pytest.param(["create", "--tasks", "1", "--xa", "1", "--xb", "1"], "xa and xb"),
    pytest.param(["create", "--tasks", "1", "--seed", "-5"], "seed"),
]


def _id(value: object) -> str | None:
    if isinstance(value, list):
        return " ".join(value)[:50] or "(no arguments)"
    return None


@pytest.mark.parametrize(("argv", "words"), FAAFO_CASES, ids=_id)
def test_every_bad_faafo_argument_is_one_clear_line(cli_env, tmp_path, capsys, argv, words):
    from faafo.client.cli import main

    places = {
        "queued": cli_env.queued,
        "done": cli_env.done,
        "missing": MISSING,
        "tmp": str(tmp_path),
        "port": str(cli_env.port),
        "dead": str(free_port()),
    }
    code, _, err = run_main(main, [arg.format(**places) for arg in argv], capsys)
    assert_one_clear_line(code, err, words)


def test_malformed_endpoint_without_a_token_is_one_clear_line(cli_env, capsys, monkeypatch):
    from faafo.client.cli import main

    monkeypatch.delenv("FAAFO_CLIENT_TOKEN")
    code, _, err = run_main(main, ["--endpoint-url", "http://[::1", "list"], capsys)
    assert_one_clear_line(code, err, "endpoint")


def test_wrong_or_missing_token_is_one_clear_line(cli_env, capsys, monkeypatch):
    from faafo.client.cli import main

    monkeypatch.setenv("FAAFO_CLIENT_TOKEN", "not-the-token")
    code, _, err = run_main(main, ["delete", cli_env.queued], capsys)
    assert_one_clear_line(code, err, "token")
    monkeypatch.delenv("FAAFO_CLIENT_TOKEN")
    code, _, err = run_main(main, ["delete", cli_env.queued], capsys)
    assert_one_clear_line(code, err, "token")


@pytest.mark.parametrize(
    ("module", "argv", "words"),
    [
        ("faafo.api.main", ["--bogus"], "unrecognized"),
        ("faafo.api.main", ["--max-pixels", "0", "migrate"], "--max-pixels"),
        ("faafo.api.main", ["--bind-port", "99999", "migrate"], "--bind-port"),
        ("faafo.worker.main", ["--concurrency", "abc"], "--concurrency"),
    ],
)
def test_service_bad_options_are_one_clear_line(module, argv, words, capsys):
    import importlib

    main = importlib.import_module(module).main
    code, _, err = run_main(main, argv, capsys)
    assert_one_clear_line(code, err, words)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["create", "--width", "0"], "at least 1"),
        (["show", "not-a-uuid"], "UUID"),
        (["get", MISSING], "not found"),
    ],
)
def test_the_installed_entry_point_as_a_real_process(cli_env, argv, words, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "faafo.client.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        cwd=tmp_path,
    )
    assert_one_clear_line(result.returncode, result.stderr, words)
    assert result.stdout == ""


# -- random arguments -------------------------------------------------------------

_values = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "-", "--", "nan", "inf", "1e999", "0x10", "١٢", "\x00", "-1", "0"]),
)
_create_flags = [
    "--tasks",
    "--width",
    "--height",
    "--iterations",
    "--xa",
    "--xb",
    "--ya",
    "--yb",
    "--min-width",
    "--max-width",
    "--min-iterations",
    "--max-iterations",
    "--min-tasks",
    "--max-tasks",
    "--kind",
    "--palette",
    "--c-real",
    "--c-imag",
    "--seed",
]


@st.composite
def bad_argv(draw) -> list[str]:  # type: ignore[no-untyped-def]
    command = draw(st.sampled_from(["create", "show", "get", "delete", "list"]))
    argv = [command]
    if command == "create":
        for flag in draw(st.lists(st.sampled_from(_create_flags), max_size=4)):
            argv += [flag, draw(_values)]
        # A valid create would make up to 10 random, possibly large, tasks: keep them tiny.
        argv += [
            "--tasks",
            "1",
            "--max-width",
            "16",
            "--max-height",
            "16",
            "--max-iterations",
            "16",
        ]
    elif command in ("show", "get", "delete"):
        argv.append(draw(st.one_of(_values, st.uuids().map(str))))
        if command == "get":
            argv += ["-o", "fuzz.png"]
    else:
        argv += draw(st.sampled_from([[], ["--status", "queued"], ["--status", "x"]]))
        for flag in draw(st.lists(st.sampled_from(["--batch", "--generated-by"]), max_size=2)):
            argv += [flag, draw(_values)]
    return argv


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=bad_argv())
def test_random_arguments_never_give_a_traceback(cli_env, capsys, argv):
    from faafo.client.cli import main

    code, _, err = run_main(main, argv, capsys)
    assert code != -1, f"faafo {argv!r} raised:\n{err}"
    if code != 0:
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1, f"faafo {argv!r} exit {code}:\n{err}"
        assert "Traceback" not in err
