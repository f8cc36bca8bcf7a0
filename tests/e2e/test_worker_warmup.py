"""A worker loads its render kernels before it takes a message, so its first task's
duration is the render, not a compile (~3 s) or a cache load (~0.35 s)."""

from __future__ import annotations

import httpx

from support.processes import Service, start_api, wait_until
from support.up import render_tasks


def cache_files(directory) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size
            for p in directory.rglob("*") if p.is_file()}


def test_the_kernels_are_ready_before_the_first_message(tmp_path):
    cache = tmp_path / "numba-cache"  # empty: the warm-up has to compile everything
    api, _, url = start_api("api", tmp_path)
    worker = Service(
        "worker", "faafo.worker.main",
        ["--data-dir", str(tmp_path / "data"), "--endpoint-url", url, "--name", "w1"],
        tmp_path, env={"NUMBA_CACHE_DIR": str(cache)},
    ).start()
    try:
        wait_until(lambda: "consuming from" in worker.tail(200) or not worker.alive(), 180,
                   message="the worker to consume")
        log = worker.tail(200)
        assert "render kernels ready in" in log, log
        warmed = log.index("render kernels ready in")
        assert warmed < log.index("consuming from"), "warmed up before taking any message"
        assert "(0 loaded from the disk cache, 5 compiled)" in log, log
        compiled = cache_files(cache)
        assert compiled, "the warm-up stored the compiled kernels"

        (record,) = render_tasks(url, None, count=1)
        assert record["generated_by"] == "w1"
        wait_until(lambda: "rendered 64x48" in worker.tail(200), 30, message="the render log")
        assert worker.tail(200).index("rendered 64x48") > warmed
        # Nothing was compiled for the first task: the cache is exactly as the warm-up left it.
        assert cache_files(cache) == compiled
        assert httpx.get(f"{url}/v1/fractal/{record['uuid']}", timeout=10).status_code == 200
    finally:
        worker.stop()
        api.stop()
