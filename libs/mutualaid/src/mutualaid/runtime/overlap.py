"""Keeping Python busy while Postgres works.

A handler's process spends its time either computing (decoding, rules, encoding events) or
waiting on one connection. Both helpers here start a statement on that connection and let
computing go on while Postgres runs it; neither lets two statements run on the connection
at once, and neither leaves one running when an error unwinds (the savepoint's rollback
would then fail with "another operation is in progress" and retry the whole batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


async def overlapped(io: Awaitable[T], work: Callable[[], U]) -> tuple[T, U]:
    """``work()`` (computing only, no use of the connection) while ``io`` (one statement's
    round trip) is in flight; both results once both are done."""
    task = asyncio.ensure_future(io)
    await asyncio.sleep(0)  # the task sends its statement before the computing starts
    try:
        result = work()
    except BaseException:
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task, result


class WriteBehind:
    """Writes whose answer a handler does not need (a ``COPY`` of the rows it decided). They
    start at once; the dispatcher encodes the handler's events for the outbox while they run
    and waits for them before the handler's savepoint ends. A handler that starts one uses
    the connection no more; the write's failure is the handler's failure."""

    #: Records encoded between two chances for a running write to move on.
    CHUNK = 250

    def __init__(self) -> None:
        self._tasks: list[asyncio.Future[object]] = []
        self._items = 0

    async def start(self, write: Awaitable[object]) -> None:
        self._tasks.append(asyncio.ensure_future(write))
        await asyncio.sleep(0)  # the write sends its statement before the handler returns

    async def finish(self) -> None:
        """Wait for every write; raise the first failure."""
        tasks, self._tasks = self._tasks, []
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def abandon(self) -> None:
        """Wait for every write and drop their outcomes: an error is already unwinding."""
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks, return_exceptions=True)

    async def breathe(self) -> None:
        """Called by a computing loop after each item: every ``CHUNK`` items, while a write
        runs, the event loop gets a turn so the write can send its rows and read replies."""
        if self._tasks:
            self._items += 1
            if self._items % self.CHUNK == 0:
                await asyncio.sleep(0)
