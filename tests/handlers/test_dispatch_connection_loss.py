"""A database connection lost under a handler aborts the batch (it is redelivered and handled
on a new connection); it is never the message's outcome. Regression tests for what issue 7's
pg_terminate_backend fault test found (tests/e2e/test_faults_runtime.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

from mutualaid.client import command_event
from mutualaid.contracts import Event
from mutualaid.contracts.jury import JurorQualified, QualifyJuror
from mutualaid.runtime import HandlerContext, Router, db
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import TRANSIENT, Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics

pytestmark = [pytest.mark.handler, pytest.mark.integration]


def record(value: bytes, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic="jury.commands", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def dispatcher(schema: str, fault: list[str]) -> Dispatcher:
    """A jury-like dispatcher whose handler meets the next fault in ``fault`` (once)."""
    router = Router("jury")

    @router.command(QualifyJuror)
    async def handle(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
        await ctx.conn.execute(f"INSERT INTO {schema}.effects VALUES ($1)", cmd.member_id)
        if fault:
            kind = fault.pop(0)
            if kind == "terminated":  # the backend goes away under the handler
                await ctx.conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            elif kind == "protocol":  # what asyncpg raises when the backend went away
                # between two statements and its protocol is still consuming the error
                raise asyncpg.exceptions.InternalClientError(
                    "cannot switch to state 15; another operation (2) is in progress")
        return [JurorQualified(member_id=cmd.member_id, exam_score=cmd.exam_score,
                               qualified_on=cmd.qualified_on)]

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()))


@pytest.mark.parametrize("fault", ["terminated", "protocol"])
async def test_a_connection_lost_under_a_handler_aborts_the_batch_not_the_message(
        pool: asyncpg.Pool, schema: str, fault: str) -> None:
    await db.migrate(pool, schema, None)
    await pool.execute(f"CREATE TABLE {schema}.effects (member_id text)")
    batch = [record(command_event(QualifyJuror(member_id=f"m{i}", exam_score=90,
                                               qualified_on=date(2020, 6, 1)),
                                  source="t", id=f"cmd-{i}"), i) for i in range(3)]
    faults = [fault]
    d = dispatcher(schema, faults)
    with pytest.raises(TRANSIENT):
        await d.process(pool, batch)
    # Nothing decided: no rejection, no DLQ copy, no effect; not counted as refused.
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox") == 0
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.effects") == 0
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.inbox") == 0
    assert not any(s.value for m in d.metrics.dlq.collect() for s in m.samples
                   if s.name.endswith("_total"))
    # The redelivered batch, on a connection of its own, gets the one normal outcome each.
    await d.process(pool, batch)
    rows = outbox.unpack(
        await pool.fetch(f"SELECT {outbox.COLUMNS} FROM {schema}.outbox ORDER BY id"))
    assert [b'"type":"jury.JurorQualified"' in r.value for r in rows] == [True] * 3
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.effects") == 3
