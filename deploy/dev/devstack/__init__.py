"""Helpers that bring up local infrastructure (Kafka-protocol broker, Postgres) for
development, CI and test fixtures. Stdlib plus the venv's aiokafka/asyncpg/pgserver only,
so it works without Docker or a JVM.

Import it by putting ``deploy/dev`` on ``sys.path`` (the CLIs next to it do that).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

#: Repository root, derived from this file's location so the scripts work from any cwd.
REPO_ROOT = Path(__file__).resolve().parents[3]
#: Git-ignored scratch directory for pid files, logs and embedded data.
RUN_DIR = REPO_ROOT / ".run"

T = TypeVar("T")


def cancel_on_sigterm() -> None:
    """Call from a script's main coroutine: SIGTERM (a timeout, an operator) cancels it, so
    its ``finally`` stops the broker and services it started, which run in sessions of their
    own and would otherwise outlive it."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a process's log, for error messages when it failed to start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* to completion from synchronous code.

    Test fixtures may call our sync API from inside a running event loop (pytest-asyncio),
    where ``asyncio.run`` refuses to work, so in that case use a private thread + loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="devstack-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
