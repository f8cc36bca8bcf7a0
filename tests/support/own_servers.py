"""A RabbitMQ node and a PostgreSQL cluster owned by one test, which may restart them.

Fault-injection tests restart the broker and the database. Restarting this
machine's shared servers would break every test running in parallel
(pytest-xdist), so these tests start private servers on free ports, in a
temporary directory, and stop and delete them afterwards. Where that is
impossible (binaries missing) the test skips with the reason, or fails under
``FAAFO_REQUIRE_SERVERS=1`` (CI), like :mod:`support.servers`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from support.processes import free_port
from support.servers import unavailable

HOST = "127.0.0.1"


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


def _first_existing(patterns: list[str]) -> str | None:
    for pattern in patterns:
        found = sorted(glob.glob(pattern), reverse=True)
        if found:
            return found[0]
    return None


class OwnRabbitMQ:
    """One RabbitMQ node with its own name, ports, epmd, data and logs; no plugins.

    The Debian wrapper ``/usr/sbin/rabbitmq-server`` re-executes itself as the
    ``rabbitmq`` user when run by root, which could not write our temporary
    directory; the real script under ``/usr/lib/rabbitmq`` runs as whoever
    starts it. ``RABBITMQ_CONF_ENV_FILE`` points at an empty file so the
    machine's ``rabbitmq-env.conf`` (node name, port 5672) never applies, and
    a private ``ERL_EPMD_PORT`` keeps the node out of the shared epmd.
    """

    def __init__(self, base: Path) -> None:
        server = _first_existing(
            [
                "/usr/lib/rabbitmq/bin/rabbitmq-server",
                "/usr/lib/rabbitmq/lib/*/sbin/rabbitmq-server",
            ]
        )
        ctl = _first_existing(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "/usr/lib/rabbitmq/lib/*/sbin/rabbitmqctl"]
        )
        if server is None or ctl is None or shutil.which("erl") is None:
            unavailable("a RabbitMQ installation (rabbitmq-server and erl) to run a private node")
        self.server, self.ctl = str(server), str(ctl)
        self.base = base
        for name in ("home", "mnesia", "log"):
            (base / name).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"faafo{uuid.uuid4().hex[:10]}@localhost"
        (base / "env.conf").write_text("")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {HOST}:{self.port}\ndisk_free_limit.absolute = 10MB\n"
        )
        self.log = base / "server.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}//"

    def _env(self) -> dict[str, str]:
        base = self.base
        return {
            **os.environ,
            "HOME": str(base / "home"),  # the Erlang cookie shared by server and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
        }

    def start(self, timeout: float = 90) -> None:
        """Start the node (same data each time) and wait until it accepts AMQP logins."""
        from kombu import Connection

        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(
            [self.server],
            cwd=self.base,
            env=self._env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.starts += 1

        def accepts() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited:\n{self._tail()}")
            if not port_open(self.port):
                return False
            try:
                with Connection(self.url, connect_timeout=2) as connection:
                    connection.ensure_connection(max_retries=1)
                return True
            except Exception:
                return False

        _wait(accepts, timeout, f"the private RabbitMQ node on port {self.port}", self.log)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self, timeout: float = 60) -> None:
        """A clean shutdown (``rabbitmqctl stop``): what an operator's restart does."""
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(
            [self.ctl, "-n", self.node, "stop"],
            env=self._env(),
            capture_output=True,
            timeout=timeout,
        )
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        _wait(lambda: not port_open(self.port), 30, "the node to close its port")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop(timeout=30)
        finally:
            self.kill()
            epmd = shutil.which("epmd")
            if epmd:
                # The node started a private epmd daemon on our port: end it.
                subprocess.run(
                    [epmd, "-port", str(self.epmd_port), "-kill"],
                    capture_output=True,
                    timeout=30,
                )


class OwnPostgres:
    """A PostgreSQL cluster made with ``initdb`` in a temporary directory, on a free port.

    PostgreSQL refuses to run as root, so under root the cluster belongs to
    the ``postgres`` user and lives in a directory that user may enter
    (pytest's ``tmp_path`` is private to root).
    """

    def __init__(self) -> None:
        bindir = _first_existing(["/usr/lib/postgresql/*/bin"])
        if bindir is None and shutil.which("pg_ctl"):
            bindir = str(Path(shutil.which("pg_ctl") or "").parent)
        if bindir is None or not (Path(bindir) / "initdb").exists():
            unavailable("PostgreSQL server binaries (initdb, pg_ctl) to run a private cluster")
        self.bindir = Path(str(bindir))
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("a 'postgres' user to own a private PostgreSQL cluster (we are root)")
        self.base = Path(tempfile.mkdtemp(prefix="faafo-pg-"))
        os.chmod(self.base, 0o755)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = free_port()
        self.database = "faafo"
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{self.database}"

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "HOME": str(self.base), "LC_ALL": "C"}
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.base,
            **kwargs,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def start(self) -> None:
        if not self._initialised:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
        # fsync off: the test restarts the server, it never crashes the machine.
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses={HOST} "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if not self._initialised:
            from sqlalchemy import create_engine, text

            admin = create_engine(
                f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres",
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{self.database}"'))
            admin.dispose()
            self._initialised = True

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session at once (clients see their connections drop)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def cleanup(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
