"""Runs the five services as separate processes against a broker and a database, and
waits until each one reports ready on ``/health``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import RUN_DIR, log_tail

SERVICES = ("membership", "claims", "publicity", "jury", "billing")
DEFAULT_PORTS = {"membership": 8081, "claims": 8082, "publicity": 8083, "jury": 8084,
                 "billing": 8085}

#: The development broker makes a group join wait half the session timeout; keep it short.
#: The demo and the tests send the calendar commands themselves, for dates of their own, so
#: publicity's built-in scheduler (which acts on today's date) stays off here.
DEV_SETTINGS = {"KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "KAFKA_ENABLE_IDEMPOTENCE": "false", "SCHEDULER_ENABLED": "false"}


class PlatformError(RuntimeError):
    pass


@dataclass
class Platform:
    bootstrap: str
    database_url: str
    ports: dict[str, int]
    logs: dict[str, Path]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def health(self, service: str) -> dict[str, object] | None:
        return fetch_health(self.ports[service])

    def stop(self, timeout: float = 20.0) -> None:
        stop_processes(self.processes.values(), timeout)


def fetch_health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read()) if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def service_env(service: str, *, bootstrap: str, database_url: str, port: int,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    prefix = service.upper() + "_"
    env = dict(os.environ)
    values = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
              "HTTP_PORT": str(port), **DEV_SETTINGS, **(extra or {})}
    env.update({prefix + k: v for k, v in values.items()})
    return env


def start_platform(*, bootstrap: str, database_url: str, ports: dict[str, int] | None = None,
                   log_dir: Path = RUN_DIR / "logs", timeout: float = 90.0,
                   extra_env: dict[str, str] | None = None,
                   services: tuple[str, ...] = SERVICES) -> Platform:
    ports = ports or DEFAULT_PORTS
    log_dir.mkdir(parents=True, exist_ok=True)
    platform = Platform(bootstrap, database_url, {s: ports[s] for s in services},
                        {s: log_dir / f"{s}.log" for s in services})
    for service in services:
        with platform.logs[service].open("ab") as log:
            platform.processes[service] = subprocess.Popen(
                [sys.executable, "-m", service], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env=service_env(service, bootstrap=bootstrap, database_url=database_url,
                                port=ports[service], extra=extra_env))
    try:
        wait_ready(platform, timeout)
    except PlatformError:
        platform.stop()
        raise
    return platform


def wait_ready(platform: Platform, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(platform.processes)
    while waiting:
        for service in sorted(waiting):
            proc = platform.processes[service]
            if proc.poll() is not None:
                raise PlatformError(f"{service} exited with {proc.returncode}:\n"
                                    f"{log_tail(platform.logs[service])}")
            if platform.health(service) is not None:
                waiting.discard(service)
        if waiting and time.monotonic() > deadline:
            raise PlatformError(f"not ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")
        if waiting:
            time.sleep(0.3)


def stop_processes(processes: object, timeout: float = 20.0) -> None:
    procs = [p for p in processes if p.poll() is None]  # type: ignore[attr-defined]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_pids(pids: list[int], timeout: float = 20.0) -> None:
    """Stops services started by an earlier ``up`` (we only have their pids)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
