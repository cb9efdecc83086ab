"""Writes a handler hands over (``ctx.writes``) and round trips overlapped with computing
(``overlapped``): the outcome is the same as if the handler had awaited them itself, a write
that fails fails only its own message, and no error leaves the connection mid-statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

from mutualaid.client import command_event
from mutualaid.contracts import Event
from mutualaid.contracts.jury import JurorQualified, QualifyJuror
from mutualaid.errors import Rejected
from mutualaid.runtime import BatchContext, BatchOutcome, HandlerContext, Router, db, outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.overlap import WriteBehind, overlapped

pytestmark = [pytest.mark.handler, pytest.mark.integration]

#: More events than one chunk of encoding, so the write is given turns mid-encoding.
FAN_OUT = 3 * WriteBehind.CHUNK + 7


def record(cmd: QualifyJuror, offset: int) -> ConsumerRecord:
    value = command_event(cmd, source="test", id=f"cmd-{offset}")
    return ConsumerRecord(topic="jury.commands", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def qualify(member_id: str, score: int = 90) -> QualifyJuror:
    return QualifyJuror(member_id=member_id, exam_score=score, qualified_on=date(2020, 1, 1))


async def copy_rows(conn: asyncpg.Connection, schema: str, ids: list[str]) -> None:
    await conn.copy_records_to_table("rows", schema_name=schema, columns=["id"],
                                     records=[(i,) for i in ids])


def events_for(cmd: QualifyJuror) -> list[Event]:
    return [JurorQualified(member_id=f"{cmd.member_id}-{i}", exam_score=cmd.exam_score,
                           qualified_on=cmd.qualified_on) for i in range(FAN_OUT)]


def single(schema: str) -> Dispatcher:
    """A handler that writes its rows behind: ``dup`` collides with a row already stored,
    ``late`` is refused after its write has started."""
    router = Router("jury")

    @router.command(QualifyJuror)
    async def handle(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
        await ctx.conn.execute(f"INSERT INTO {schema}.before VALUES ($1)", cmd.member_id)
        await ctx.writes.start(copy_rows(ctx.conn, schema, [
            f"{cmd.member_id}-{i}" for i in range(FAN_OUT)] + (
                ["taken"] if cmd.member_id == "dup" else [])))
        if cmd.member_id == "late":
            raise Rejected("TOO_LATE", "refused after the write started")
        return events_for(cmd)

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()))


def batched(schema: str) -> Dispatcher:
    router = Router("jury")

    @router.command_batch(QualifyJuror)
    async def handle(cmds: Sequence[QualifyJuror], ctx: BatchContext
                     ) -> Sequence[BatchOutcome]:
        ids = [c.member_id for c in cmds if c.exam_score >= 80]
        await ctx.writes.start(copy_rows(ctx.conn, schema, ids))
        return [events_for(c) if c.exam_score >= 80 else Rejected("EXAM_FAILED", "below 80")
                for c in cmds]

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()))


async def prepare(pool: asyncpg.Pool, schema: str) -> None:
    await db.migrate(pool, schema, None)
    await pool.execute(f"CREATE TABLE {schema}.rows (id text PRIMARY KEY)")
    await pool.execute(f"CREATE TABLE {schema}.before (id text)")
    await pool.execute(f"INSERT INTO {schema}.rows VALUES ('taken')")


async def outcomes(pool: asyncpg.Pool, schema: str) -> list[tuple[str, str]]:
    """(type, subject or reason code) of every event staged, in order."""
    out = []
    for r in outbox.unpack(await pool.fetch(
            f"SELECT {outbox.COLUMNS} FROM {schema}.outbox ORDER BY id")):
        if r.topic == "jury.events":
            value = orjson.loads(r.value)
            out.append((value["type"], value["data"].get("reason_code") or value["subject"]))
    return out


async def stored(pool: asyncpg.Pool, schema: str, table: str) -> set[str]:
    return {r["id"] for r in await pool.fetch(f"SELECT id FROM {schema}.{table}")}


async def test_written_behind_rows_and_their_events_stand_together(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    async with pool.acquire() as conn, conn.transaction():
        await single(schema).process_in(conn, [record(qualify("a"), 0), record(qualify("b"), 1)])
    assert await stored(pool, schema, "rows") == {"taken"} | {
        f"{m}-{i}" for m in "ab" for i in range(FAN_OUT)}
    assert await outcomes(pool, schema) == [
        ("jury.JurorQualified", f"{m}-{i}") for m in "ab" for i in range(FAN_OUT)]


async def test_a_failed_write_fails_its_own_message_only(pool: asyncpg.Pool,
                                                          schema: str) -> None:
    await prepare(pool, schema)
    dispatcher = single(schema)
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, [record(qualify("a"), 0), record(qualify("dup"), 1),
                                           record(qualify("late"), 2), record(qualify("b"), 3)])
    # dup's write broke the primary key: its message failed, everything it wrote rolled back
    # (before the write, and the write); late's rejection rolled its write back too.
    assert await stored(pool, schema, "before") == {"a", "b"}
    assert await stored(pool, schema, "rows") == {"taken"} | {
        f"{m}-{i}" for m in "ab" for i in range(FAN_OUT)}
    got = await outcomes(pool, schema)
    assert [o for o in got if o[0] == "jury.CommandRejected"] == [
        ("jury.CommandRejected", "PROCESSING_FAILED"), ("jury.CommandRejected", "TOO_LATE")]
    assert len(got) == 2 * FAN_OUT + 2
    assert dispatcher.metrics.messages.labels("jury.QualifyJuror", "ok")._value.get() == 2


async def test_a_batch_whose_write_fails_is_decided_again_one_by_one(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    batch = [record(qualify("a"), 0), record(qualify("taken"), 1), record(qualify("c", 50), 2),
             record(qualify("d"), 3)]
    async with pool.acquire() as conn, conn.transaction():
        await batched(schema).process_in(conn, batch)
    assert await stored(pool, schema, "rows") == {"taken", "a", "d"}
    got = await outcomes(pool, schema)
    assert [o for o in got if o[0] == "jury.CommandRejected"] == [
        ("jury.CommandRejected", "PROCESSING_FAILED"), ("jury.CommandRejected", "EXAM_FAILED")]
    assert len(got) == 2 * FAN_OUT + 2


async def test_overlapped_returns_both_results(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        answer, computed = await overlapped(conn.fetchval("SELECT 40 + 2"),
                                            lambda: sum(range(10)))
        assert (answer, computed) == (42, 45)


async def test_overlapped_leaves_the_connection_idle_when_the_computing_fails(
        pool: asyncpg.Pool) -> None:
    def fail() -> None:
        raise ValueError("rule bug")

    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="rule bug"):
            await overlapped(conn.fetchval("SELECT pg_sleep(0.2)"), fail)
        # had the statement still been running, this would be "another operation is in
        # progress"
        assert await conn.fetchval("SELECT 1") == 1
