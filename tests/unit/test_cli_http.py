"""The ``faafo`` CLI against servers that are not (quite) the faafo API.

A small HTTP server runs in a thread of the test and answers as the case
needs: a redirect, an HTML page, JSON of the wrong shape, a 503 before
accepting, a dropped connection. The CLI must treat only a 2xx faafo answer
as success, say in one line what is wrong, and send each create with an
``Idempotency-Key`` that its retries repeat.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faafo.client.cli import main
from faafo.client.http import IDEMPOTENCY_HEADER

UUID = "0f599654-ea1c-477a-a6da-4042f51e1b80"
ELSEWHERE = "https://faafo.invalid"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


Respond = Callable[[Seen, int], Answer]


class TinyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: TinyServer

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
        with self.server.lock:
            self.server.seen.append(seen)
            answer = self.server.respond(seen, len(self.server.seen))
        if answer.drop:
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if "Content-Length" in answer.headers:
            self.close_connection = True  # a promised length that the body may not keep
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, *_: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def serve(monkeypatch, tmp_path) -> Iterator[Callable[[Respond], TinyServer]]:
    """Start a TinyServer answering with ``respond``; the CLI's environment points at it."""
    servers: list[TinyServer] = []
    monkeypatch.delenv("FAAFO_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)

    def start(respond: Respond) -> TinyServer:
        server = TinyServer(respond)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("FAAFO_ENDPOINT_URL", server.url)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``main(argv)``; an exception escaping it (a traceback for the user) is code -1."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else 1
    except BaseException as error:
        out, err = capsys.readouterr()
        return -1, out, f"{err}\nTraceback: {error.__class__.__name__}: {error}"
    out, err = capsys.readouterr()
    return code or 0, out, err


def one_error_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, -1), f"exit {code}: {err}"
    assert len(lines) == 1, err
    assert lines[0].startswith("faafo: error: "), lines[0]
    return lines[0]


COMMANDS = [
    ["list"],
    ["show", UUID],
    ["create", "--tasks", "1"],
    ["get", UUID],
    ["delete", UUID],
]


def json_answer(value: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_redirect_is_an_error_naming_where_to_point_the_cli(serve, capsys, argv):
    server = serve(lambda seen, _: Answer(301, headers={"Location": ELSEWHERE + seen.path}))
    code, out, err = run_main(argv, capsys)
    line = one_error_line(code, err)
    assert f"{server.url} redirected to {ELSEWHERE}: use that as --endpoint-url" in line
    assert out == ""  # in particular no "deleted"
    assert len(server.seen) == 1  # not followed, not retried


def test_a_redirect_to_another_path_is_named_as_is(serve, capsys):
    server = serve(lambda *_: Answer(302, headers={"Location": "/login"}))
    code, _, err = run_main(["list"], capsys)
    line = one_error_line(code, err)
    assert f"redirected /v1/fractal to {server.url}/login, which a faafo API never does" in line


HTML = Answer(200, b"<html><body>Welcome to nginx!</body></html>", {"Content-Type": "text/html"})


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_an_html_page_is_not_a_faafo_api(serve, capsys, argv):
    server = serve(lambda *_: HTML)
    code, out, err = run_main(argv, capsys)
    line = one_error_line(code, err)
    assert f"{server.url} is not a faafo API" in line
    assert "text/html" in line
    assert out == ""


@pytest.mark.parametrize("argv", COMMANDS[:4], ids=lambda a: a[0])
@pytest.mark.parametrize(
    "body",
    [{"hello": "world"}, [1, 2], "text", {"objects": [{"uuid": UUID}], "total_pages": 1}],
    ids=["object", "array", "string", "partial-records"],
)
def test_json_of_the_wrong_shape_is_not_a_faafo_api(serve, capsys, argv, body):
    server = serve(lambda *_: json_answer(body, 201 if argv[0] == "create" else 200))
    code, out, err = run_main(argv, capsys)
    line = one_error_line(code, err)
    assert f"{server.url} is not a faafo API" in line
    assert out == ""


def test_an_error_whose_body_is_not_the_faafo_problem_is_its_status_line(serve, capsys):
    server = serve(lambda *_: json_answer([1, 2], 404))
    code, _, err = run_main(["show", UUID], capsys)
    line = one_error_line(code, err)
    assert line == f"faafo: error: the server at {server.url} answered HTTP 404 Not Found"


def test_the_api_message_of_an_error_is_shown(serve, capsys):
    serve(lambda *_: json_answer({"code": 404, "message": f"fractal {UUID} not found"}, 404))
    code, _, err = run_main(["show", UUID], capsys)
    assert one_error_line(code, err) == f"faafo: error: fractal {UUID} not found"


# -- downloading: a corrupt or cut-off image never replaces the file ---------------------


def finished_record(checksum: str) -> dict:
    return {
        **record({"uuid": UUID, "width": 4, "height": 3, "iterations": 8}),
        **{"xa": -1.0, "xb": 1.0, "ya": -1.0, "yb": 1.0},
        "status": "done",
        "checksum": checksum,
        "size": 100,
    }


@pytest.mark.parametrize("fault", ["checksum mismatch", "connection cut"])
def test_a_failed_download_keeps_the_old_file_and_leaves_no_temporary(
    serve, capsys, tmp_path, fault
):
    image = b"\x89PNG\r\n\x1a\n" + bytes(92)

    def respond(seen: Seen, _: int) -> Answer:
        if seen.path == f"/v1/fractal/{UUID}":
            return json_answer(finished_record("0" * 64 if fault == "checksum mismatch" else ""))
        headers = {"Content-Type": "image/png"}
        if fault == "connection cut":
            # Promise more bytes than are sent, then close: the body ends early.
            return Answer(200, image, {**headers, "Content-Length": str(10 * len(image))})
        return Answer(200, image, headers)

    serve(respond)
    folder = tmp_path / "images"
    folder.mkdir()
    target = folder / "kept.png"
    target.write_bytes(b"the previous image")
    code, out, err = run_main(["get", UUID, "-o", str(target)], capsys)
    line = one_error_line(code, err)
    assert ("checksum mismatch" if fault == "checksum mismatch" else "cannot reach") in line
    assert out == ""
    assert target.read_bytes() == b"the previous image"
    assert [p.name for p in folder.iterdir()] == ["kept.png"]


# -- creating: a fake API that accepts tasks, and what the CLI sends it ---------------


def record(task: dict) -> dict:
    return {**task, "status": "queued", "duration": None, "size": None, "checksum": None}


def accept(seen: Seen, _: int) -> Answer:
    """201 for a create (one task or many), as the faafo API answers it."""
    body = json.loads(seen.body)
    if isinstance(body, list):
        return json_answer({"num_results": len(body), "objects": [record(t) for t in body]}, 201)
    return json_answer(record(body), 201)


def posts(server: TinyServer) -> list[Seen]:
    return [seen for seen in server.seen if seen.method == "POST"]


def key_of(seen: Seen) -> str:
    keys = [v for k, v in seen.headers.items() if k.lower() == IDEMPOTENCY_HEADER.lower()]
    assert len(keys) == 1, seen.headers
    return keys[0]


def test_every_create_request_carries_its_own_idempotency_key(serve, capsys):
    server = serve(accept)
    tiny = ["--max-width", "8", "--max-height", "8", "--max-iterations", "8"]
    for argv in (["create", "--tasks", "3", *tiny], ["create", "--tasks", "1200", *tiny]):
        code, _, err = run_main(argv, capsys)
        assert code == 0, err
    keys = [key_of(seen) for seen in posts(server)]
    assert len(keys) == 4  # 3 tasks in one request, 1200 in three
    assert len(set(keys)) == 4
    assert all(uuidlib.UUID(key).version == 4 for key in keys)


def test_create_flags_reach_the_request_body_and_uuids_go_to_stdout(serve, capsys):
    server = serve(accept)
    argv = [
        "create",
        "--tasks",
        "3",
        "--kind",
        "mandelbrot",
        "--palette",
        "ocean",
        "--c-real",
        "-0.8",
        "--c-imag",
        "0.156",
        "--seed",
        "42",
        "--width",
        "320",
        "--min-height",
        "300",
        "--max-height",
        "301",
    ]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    [post] = posts(server)
    tasks = json.loads(post.body)
    assert len(tasks) == 3
    assert len({task["batch"] for task in tasks}) == 1
    for task in tasks:
        assert task["kind"] == "mandelbrot"
        assert task["palette"] == "ocean"
        assert task["c_real"] == -0.8 and task["c_imag"] == 0.156
        assert task["seed"] == 42
        assert task["width"] == 320 and task["height"] in (300, 301)
    assert out.split() == [task["uuid"] for task in tasks]
    assert err.strip() == "generating 3 task(s)"


def test_without_those_flags_the_body_leaves_them_to_the_api(serve, capsys):
    server = serve(accept)
    code, _, err = run_main(["create", "--tasks", "2"], capsys)
    assert code == 0, err
    for task in json.loads(posts(server)[0].body):
        assert not {"kind", "palette", "c_real", "c_imag", "seed"} & task.keys()


def unavailable(seen: Seen, _: int) -> Answer:
    answer = json_answer({"code": 503, "message": "database unavailable, try again shortly"}, 503)
    answer.headers["Retry-After"] = "0"
    return answer


@pytest.mark.parametrize("first", ["503", "dropped connection"])
def test_a_retried_create_repeats_its_key_and_body(serve, capsys, first):
    def flaky(seen: Seen, count: int) -> Answer:
        if count == 1:
            return unavailable(seen, count) if first == "503" else Answer(0, drop=True)
        return accept(seen, count)

    server = serve(flaky)
    code, out, err = run_main(["create", "--tasks", "2"], capsys)
    assert code == 0, err
    retried, accepted = posts(server)
    assert key_of(retried) == key_of(accepted)
    assert retried.body == accepted.body
    assert len(out.split()) == 2


def test_a_create_that_stays_unavailable_gives_up_with_the_api_message(serve, capsys):
    server = serve(unavailable)
    code, out, err = run_main(["create", "--tasks", "2"], capsys)
    line = one_error_line(code, err)
    assert line == "faafo: error: database unavailable, try again shortly"
    assert out == ""
    attempts = posts(server)
    assert len(attempts) == 3
    assert len({key_of(seen) for seen in attempts}) == 1


def test_reads_and_deletes_are_not_retried(serve, capsys):
    server = serve(unavailable)
    for argv in (["show", UUID], ["delete", UUID], ["list"]):
        code, _, err = run_main(argv, capsys)
        one_error_line(code, err)
    assert len(server.seen) == 3
    assert all(IDEMPOTENCY_HEADER.lower() not in map(str.lower, s.headers) for s in server.seen)
