"""The built-in scheduler: sends the publicity calendar commands (SPEC §8) for "today" in
China Standard Time, by writing them as CloudEvents into the outbox for
``publicity.commands``. They reach the service through Kafka, exactly like an external cron's
commands, and are handled (and de-duplicated by the inbox) the same way.

Every replica runs it; a transaction-scoped lock and the record of sent commands make one
replica send each command once. Ids derive from the command and its round date, so even a
command sent twice (the record lost, an operator re-sending) is applied once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import structlog

from mutualaid.contracts import topics
from mutualaid.contracts.envelope import STRUCTURED_CONTENT_TYPE, encode_event, now_iso
from mutualaid.contracts.publicity import ClosePublicityRound, OpenPublicityRound
from mutualaid.rulebook import Rulebook
from mutualaid.runtime.outbox import OutgoingRecord, stage

from .adapters import repository as repo
from .adapters import schedule
from .domain import calendar
from .domain.calendar import Due

if TYPE_CHECKING:
    from mutualaid.runtime import ServiceRuntime
    from mutualaid.runtime.service import BackgroundTask

log = structlog.get_logger(__name__)

SCHEMA = "publicity"
SOURCE = "mutualaid/publicity-scheduler"
#: Namespace of the command ids; changing it would make restarts send "new" commands.
_IDS = uuid.UUID("7b1c4d0e-2f53-5a8e-9c61-3d2f8e6a4b10")
#: How far back the scheduler reads rounds: the catch-up span plus any objection window.
_HORIZON = timedelta(days=calendar.CATCH_UP_DAYS + 31)

CalendarCommand = OpenPublicityRound | ClosePublicityRound
Clock = Callable[[], date]


def china_today() -> date:
    return datetime.now(calendar.CHINA_STANDARD_TIME).date()


def command_for(due: Due) -> CalendarCommand:
    if due.kind == "open":
        return OpenPublicityRound(round_date=due.round_date)
    return ClosePublicityRound(round_date=due.round_date)


def command_id(command: CalendarCommand) -> str:
    return str(uuid.uuid5(_IDS, f"{command.TYPE}/{command.round_date.isoformat()}"))


def command_record(command: CalendarCommand) -> OutgoingRecord:
    cid = command_id(command)
    return OutgoingRecord(
        topic=topics.commands(SCHEMA),
        value=encode_event(command, source=SOURCE, id=cid, time=now_iso(), correlationid=cid),
        key=command.subject().encode(), headers={"content-type": STRUCTURED_CONTENT_TYPE})


async def tick(conn: asyncpg.Connection, rulebook: Rulebook, today: date
               ) -> list[CalendarCommand]:
    """Write the commands due on ``today`` that were not sent before; return them."""
    async with conn.transaction():
        await schedule.lock(conn)
        since = today - _HORIZON
        known = calendar.known_rounds(rulebook, await repo.rounds_since(conn, since),
                                      await schedule.sent_since(conn, since))
        due = calendar.due_commands(today, rulebook, known)
        commands = [command_for(d) for d in due]
        fresh = await schedule.record_sent(conn, due, [command_id(c) for c in commands])
        send = [c for d, c in zip(due, commands, strict=True) if d in fresh]
        await stage(conn, SCHEMA, [command_record(c) for c in send])
    return send


def scheduler_task(today: Clock = china_today) -> BackgroundTask:
    """The background task of the service definition; ``today`` is injectable for tests."""

    async def publicity_scheduler(rt: ServiceRuntime) -> None:
        settings = rt.settings
        if not getattr(settings, "scheduler_enabled", True):
            log.info("publicity scheduler disabled: an external cron sends the calendar")
            return
        interval = getattr(settings, "scheduler_interval_seconds", 60.0)
        while True:  # the first pass right at start-up is the catch-up
            await run_once(rt, today())
            await asyncio.sleep(interval)

    return publicity_scheduler


async def run_once(rt: ServiceRuntime, today: date) -> list[CalendarCommand]:
    try:
        async with rt.require_pool().acquire() as conn:
            sent = await tick(conn, rt.resources.rulebook, today)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # the database may be away: the next tick tries again, nothing is lost
        log.warning("publicity scheduler tick failed", error=repr(exc), today=str(today))
        return []
    except Exception:  # a bug must not stop the calendar for good: log it, keep ticking
        log.exception("publicity scheduler tick failed", today=str(today))
        return []
    for command in sent:
        rt.service_metrics.scheduled.labels(command.TYPE).inc()
        log.info("calendar command sent", type=command.TYPE,
                 round_date=str(command.round_date), id=command_id(command))
    return sent
