"""An API (or several) and workers as real processes, wired by URLs as in a deployment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from faafo.client.http import FaafoClient
from support.processes import Service, free_port, wait_http


@dataclass
class Cluster:
    database_url: str
    transport_url: str
    log_dir: Path
    data_dir: Path
    apis: list[Service] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    workers: list[Service] = field(default_factory=list)
    extra_api_args: list[str] = field(default_factory=list)

    def common(self) -> list[str]:
        return [
            "--database-url",
            self.database_url,
            "--transport-url",
            self.transport_url,
            "--data-dir",
            str(self.data_dir),
        ]

    def start_api(self) -> str:
        port = free_port()
        name = f"api-{len(self.apis) + 1}"
        api = Service(
            name,
            "faafo.api.main",
            [
                *self.common(),
                "--listen-address",
                "127.0.0.1",
                "--bind-port",
                str(port),
                *self.extra_api_args,
            ],
            self.log_dir,
        )
        api.start()
        self.apis.append(api)
        self.ports.append(port)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", services=[api])
        return url

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start_worker(self, name: str | None = None, *extra: str) -> Service:
        name = name or f"worker-{len(self.workers) + 1}"
        worker = Service(
            name,
            "faafo.worker.main",
            [*self.common(), "--endpoint-url", ",".join(self.endpoints), "--name", name, *extra],
            self.log_dir,
        )
        worker.start()
        self.workers.append(worker)
        return worker

    def client(self, index: int = 0) -> FaafoClient:
        return FaafoClient(self.endpoints[index])

    def stop(self) -> None:
        for service in [*self.workers, *self.apis]:
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail()}" for s in [*self.apis, *self.workers])


def wait_all_finished(
    client: FaafoClient, batch: str, total: int, timeout: float, cluster: Cluster | None = None
) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = client.batch(batch)
        if status["finished"] and status["total"] == total:
            return status
        time.sleep(0.2)
    logs = cluster.logs() if cluster else ""
    raise AssertionError(f"batch not finished after {timeout}s: {status}\n{logs}")
