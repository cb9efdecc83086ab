"""The runtime under faults, on the real Postgres and broker: regression tests for what issue
7's fault tests found (tests/e2e/test_faults_runtime.py): the outbox relay and the services'
background loops must outlive any error, and a relay standing by reports the backlog."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry

from mutualaid.runtime import db, outbox
from mutualaid.runtime.kafka import new_producer
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.outbox import OutboxRelay, OutgoingRecord, _lock_key
from mutualaid.runtime.service import supervise
from mutualaid.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def stage(pool: asyncpg.Pool, schema: str, topic: str, n: int, first: int = 0) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, schema, [OutgoingRecord(topic, f"e{i}".encode(), b"key")
                                          for i in range(first, first + n)])


async def read(bootstrap: str, topic: str, n: int, timeout: float = 30) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got += [r.value for r in records]
    finally:
        await consumer.stop()
    return got


async def drained(pool: asyncpg.Pool, schema: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox"):
            await asyncio.sleep(0.1)


def relay_for(database_url: str, schema: str, producer: Any) -> OutboxRelay:
    return OutboxRelay(dsn=database_url, schema=schema, producer=producer,
                       metrics=RuntimeMetrics.create(CollectorRegistry()), poll_seconds=0.2)


@pytest.fixture
async def producer(kafka_bootstrap: str, database_url: str) -> AIOKafkaProducer:
    p = new_producer(ServiceSettings(database_url=database_url,
                                     kafka_bootstrap_servers=kafka_bootstrap), "test-relay")
    await p.start()
    yield p
    await p.stop()


async def test_a_relay_standing_by_reports_the_backlog_nobody_relays(
        pool: asyncpg.Pool, schema: str, database_url: str, producer: AIOKafkaProducer) -> None:
    """Before: only the leader set the gauges, so with the lease held elsewhere (a stuck
    leader, an operator) /metrics said 0 while the backlog grew."""
    await db.migrate(pool, schema, None)
    await stage(pool, schema, f"{schema}.events", 25)
    holder = await asyncpg.connect(database_url)
    await holder.fetchval("SELECT pg_advisory_lock($1)", _lock_key(schema))
    relay = relay_for(database_url, schema, producer)
    task = asyncio.create_task(relay.run())
    gauges = relay._metrics
    try:
        async with asyncio.timeout(20):  # the age keeps growing while nobody relays
            while not (gauges.outbox_pending._value.get() == 25
                       and gauges.outbox_oldest_age._value.get() >= 1.0):
                await asyncio.sleep(0.1)
        assert not relay.is_leader
        assert await pool.fetchval(f"SELECT sum(records) FROM {schema}.outbox") == 25
    finally:
        await holder.close()
        relay.stop()
        await asyncio.wait_for(task, 15)


class FailingOnce:
    """A producer that fails once with an error the relay did not expect, then works."""

    def __init__(self, producer: AIOKafkaProducer, error: Exception) -> None:
        self._producer = producer
        self._error: Exception | None = error

    async def partitions_for(self, topic: str) -> Any:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return await self._producer.partitions_for(topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


@pytest.mark.parametrize("error", [
    RuntimeError("a bug"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress")])
async def test_an_unexpected_error_does_not_end_the_relay(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str,
        producer: AIOKafkaProducer, error: Exception) -> None:
    """Before: an error outside the few the relay caught ended its task for good, and the
    service's /health went on saying "standby" while nothing was published."""
    await db.migrate(pool, schema, None)
    topic = f"{schema}.events"
    await stage(pool, schema, topic, 10)
    relay = relay_for(database_url, schema, FailingOnce(producer, error))
    task = asyncio.create_task(relay.run())
    try:
        assert await read(kafka_bootstrap, topic, 10) == [f"e{i}".encode() for i in range(10)]
        await drained(pool, schema)
        assert not task.done()
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)


async def test_the_relay_comes_back_after_its_connection_is_terminated(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str,
        producer: AIOKafkaProducer) -> None:
    await db.migrate(pool, schema, None)
    topic = f"{schema}.events"
    relay = relay_for(database_url, schema, producer)
    task = asyncio.create_task(relay.run())
    key = _lock_key(schema) & 0xFFFF_FFFF_FFFF_FFFF
    terminated: list[int] = []
    try:
        for round_ in range(3):
            await stage(pool, schema, topic, 5, first=5 * round_)
            async with asyncio.timeout(15):  # a relay holds the lease on a new connection
                while (pid := await pool.fetchval(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND objsubid = 1 AND classid = $1::bigint::oid "
                        "AND objid = $2::bigint::oid", key >> 32, key & 0xFFFF_FFFF)
                       ) in (None, *terminated):
                    await asyncio.sleep(0.05)
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
            terminated.append(pid)
        got = await read(kafka_bootstrap, topic, 15)
        # At least once: a batch sent before its DELETE was cut off comes again, in order.
        assert sorted(set(got)) == sorted(f"e{i}".encode() for i in range(15))
        await drained(pool, schema)
        assert not task.done()
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)


async def test_a_background_loop_that_raises_is_started_again() -> None:
    """Before: a metrics refresher or the inbox pruner that met an error its own ``except``
    did not name (asyncpg's InternalClientError after pg_terminate_backend) ended for good,
    its gauges frozen, with nothing in /health or the log until shutdown."""
    runs: list[int] = []
    stopped = asyncio.Event()

    async def refresher() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress")
        stopped.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise("refresher", refresher, backoff=0.01))
    try:
        await asyncio.wait_for(stopped.wait(), 5)
        assert runs == [0, 1, 2] and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()  # stopping the service still stops it
