"""The same schema and queries on SQLite, PostgreSQL and MariaDB; large images in chunks."""

from __future__ import annotations

import os
import subprocess
import sys

from faafo.store import fractals as store
from faafo.store import migrate
from faafo.store.database import connect
from faafo.store.models import CHUNK_SIZE

# A 10000 x 10000 fractal encodes to tens of MiB: well above MariaDB's default
# 16 MiB max_allowed_packet, which is why images are stored in chunks.
LARGE = 48 * 1024 * 1024 + 12345


def row(uuid: str) -> dict:
    return {
        "uuid": uuid,
        "width": 10000,
        "height": 10000,
        "iterations": 512,
        "xa": -1.5,
        "xb": 1.5,
        "ya": -1.0,
        "yb": 1.0,
        "kind": "julia",
        "palette": "faafo",
        "seed": 2**47,
    }


def test_migrate_command_and_idempotent_upgrade(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "faafo.api.main", "--database-url", database_url, "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    database = connect(database_url)
    assert migrate.current_revision(database) == migrate.head_revision()
    migrate.upgrade(database)
    database.dispose()


def test_largest_image_roundtrip_and_cascade(database_url):
    database = connect(database_url)
    migrate.upgrade(database)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(LARGE - 8)
    now = store.utcnow()
    with database.session() as session:
        store.insert_tasks(session, [row("big"), row("other")], now)
    with database.session() as session:
        outcome = store.store_results(
            session,
            [
                store.Result(
                    uuid="big",
                    png=png,
                    checksum=store.sha256_hex(png),
                    duration=1.5,
                    generated_by="w",
                    c_real=-0.8,
                    c_imag=0.156,
                )
            ],
            now,
        )
    assert outcome == {"big": "stored"}
    with database.reading() as session:
        chunks = store.image_chunk_numbers(session, "big")
        assert len(chunks) == -(-LARGE // CHUNK_SIZE)
        assert store.image_bytes(session, "big") == png
        record = store.get(session, "big")
        assert (record.status, record.size, record.seed, record.c_real) == (
            "done",
            LARGE,
            2**47,
            -0.8,
        )
        assert record.created_at.microsecond == now.microsecond, "microsecond timestamps"
    with database.session() as session:
        assert store.delete_fractal(session, "big")
    with database.reading() as session:
        assert store.image_chunk_numbers(session, "big") == []
        assert store.get(session, "other") is not None
    database.dispose()


def test_concurrent_claims_and_results_leave_one_outcome(database_url):
    """Two workers racing on the same task: one result stored, the other a duplicate."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    database = connect(database_url)
    migrate.upgrade(database)
    with database.session() as session:
        store.insert_tasks(session, [row(f"t{i}") for i in range(20)], store.utcnow())

    def deliver(worker: str) -> dict:
        png = b"\x89PNG\r\n\x1a\n" + worker.encode() * 100
        with database.session() as session:
            store.claim(
                session,
                [f"t{i}" for i in range(20)],
                worker,
                store.utcnow(),
                timedelta(seconds=60),
                10,
            )
        for _ in range(5):
            try:
                with database.session() as session:
                    return store.store_results(
                        session,
                        [
                            store.Result(
                                uuid=f"t{i}",
                                png=png,
                                checksum=store.sha256_hex(png),
                                duration=0.1,
                                generated_by=worker,
                            )
                            for i in range(20)
                        ],
                        store.utcnow(),
                    )
            except store.ConcurrentDelivery:
                continue
        raise AssertionError("never settled")

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(deliver, ["w1", "w2"]))
    for i in range(20):
        assert sorted(o[f"t{i}"] for o in outcomes) == ["duplicate", "stored"]
    with database.reading() as session:
        for i in range(20):
            record = store.get(session, f"t{i}")
            data = store.image_bytes(session, f"t{i}")
            assert store.sha256_hex(data) == record.checksum, "one result, consistent"
    database.dispose()
