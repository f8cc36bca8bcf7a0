"""What ``faafo up`` hands its children: secrets in environments only, each what it needs.

Read from /proc as any local user could: a command line is public (``ps``), an
environment only to the process's owner.
"""

from __future__ import annotations

from support.processes import free_port
from support.up import UpProcess, cmdline_of, environ_of, render_tasks


def test_urls_and_tokens_reach_the_children_through_their_environment(
    tmp_path, postgres_url, rabbitmq_url
):
    # PostgreSQL here trusts local connections, so any password works: one to look for.
    database_url = postgres_url.replace("://postgres@", "://postgres:db-pw-4e1f@")
    assert "db-pw-4e1f" in database_url and ":guest@" in rabbitmq_url
    up = UpProcess(
        tmp_path,
        "--database-url", database_url,
        "--transport-url", rabbitmq_url,
        "--bind-port", str(free_port()),
        "--workers", "2",
        # Exported by the caller: no child may get it from there.
        env={"FAAFO_CLIENT_TOKEN": "inherited-client-token"},
    )
    try:
        url = up.wait_banner()
        tokens = up.tokens()
        # The URLs given through the environment are the ones used: tasks get done.
        assert {r["status"] for r in render_tasks(url, tokens["client_token"])} == {"done"}
        (api,) = up.children("faafo.api.main")
        workers = up.children("faafo.worker.main")
        assert len(workers) == 2
        for pid in (api, *workers):
            cmdline = cmdline_of(pid)
            for secret in ("db-pw-4e1f", ":guest@", tokens["client_token"],
                           tokens["worker_token"], "inherited-client-token"):
                assert secret not in cmdline, f"{secret!r} on the command line: {cmdline}"
        api_env = environ_of(api)
        assert api_env["FAAFO_DATABASE_URL"] == database_url
        assert api_env["FAAFO_TRANSPORT_URL"] == rabbitmq_url
        assert api_env["FAAFO_CLIENT_TOKEN"] == tokens["client_token"]
        assert api_env["FAAFO_WORKER_TOKEN"] == tokens["worker_token"]
        for pid in workers:
            env = environ_of(pid)
            assert env["FAAFO_TRANSPORT_URL"] == rabbitmq_url
            assert env["FAAFO_WORKER_TOKEN"] == tokens["worker_token"]
            assert "FAAFO_CLIENT_TOKEN" not in env, "a worker never holds the client token"
            assert "FAAFO_DATABASE_URL" not in env, "workers never talk to the database"
    finally:
        assert up.stop() == 0, up.log()[-3000:]


def test_open_mode_passes_no_token_even_an_exported_one(tmp_path):
    up = UpProcess(
        tmp_path,
        "--open",
        "--bind-port", str(free_port()),
        "--workers", "1",
        env={"FAAFO_CLIENT_TOKEN": "exported-c", "FAAFO_WORKER_TOKEN": "exported-w"},
    )
    try:
        url = up.wait_banner()
        assert {r["status"] for r in render_tasks(url, None)} == {"done"}, "open to anyone"
        for pid in up.children("faafo.api.main") + up.children("faafo.worker.main"):
            env = environ_of(pid)
            assert "FAAFO_CLIENT_TOKEN" not in env and "FAAFO_WORKER_TOKEN" not in env
    finally:
        assert up.stop() == 0, up.log()[-3000:]
