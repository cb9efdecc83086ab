"""The runtime's storage guarantees on the real Postgres (and the real broker for the relay)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.resources import files

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from mutualaid.runtime import db, inbox, outbox, retention
from mutualaid.runtime.kafka import ensure_topics, new_producer
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.outbox import OutboxRelay, OutgoingRecord
from mutualaid.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_two_replicas_migrating_at_once_apply_each_file_once(pool: asyncpg.Pool) -> None:
    # membership's real migrations; its schema name is fixed, so use a database of its own.
    folder = files("membership") / "migrations"
    count = sum(1 for f in folder.iterdir() if f.name.endswith(".sql"))
    results = await asyncio.gather(db.migrate(pool, "membership", folder),
                                   db.migrate(pool, "membership", folder))
    assert sorted(len(r) for r in results) == [0, count]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM membership.schema_migrations") == count
        assert await conn.fetchval("SELECT count(*) FROM membership.members") == 0


async def test_inbox_sees_each_id_once_and_forgets_on_rollback(pool: asyncpg.Pool,
                                                               schema: str) -> None:
    await db.migrate(pool, schema, None)

    def msgs(*ids: str) -> list[tuple[str, bytes]]:
        return [(i, inbox.digest(i.encode())) for i in ids]

    async with pool.acquire() as conn:
        async with conn.transaction():
            fresh, _ = await inbox.claim(conn, schema, msgs("a", "b", "a"))
            assert fresh == {"a", "b"}
            fresh, seen = await inbox.claim(conn, schema, msgs("a", "c"))
            assert fresh == {"c"} and seen == {"a": inbox.digest(b"a")}
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert (await inbox.claim(conn, schema, msgs("d")))[0] == {"d"}
                raise RuntimeError("abort")
        async with conn.transaction():
            assert (await inbox.claim(conn, schema, msgs("d", "b")))[0] == {"d"}


async def test_outbox_rows_exist_only_if_the_transaction_commits(pool: asyncpg.Pool,
                                                                 schema: str) -> None:
    await db.migrate(pool, schema, None)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await outbox.stage(conn, schema, [OutgoingRecord("x", b"lost")])
                raise RuntimeError("abort")
        async with conn.transaction():
            await outbox.stage(conn, schema, [OutgoingRecord("x", b"kept", b"k", {"h": "v"})])
        rows = outbox.unpack(await conn.fetch(f"SELECT {outbox.COLUMNS} FROM {schema}.outbox"))
    assert [(r.topic, r.key, r.value, r.headers) for r in rows] == [
        ("x", b"k", b"kept", {"h": "v"})]


def _settings(database_url: str, bootstrap: str) -> ServiceSettings:
    return ServiceSettings(database_url=database_url, kafka_bootstrap_servers=bootstrap,
                           relay_poll_seconds=0.2)


@asynccontextmanager
async def relaying(database_url: str, bootstrap: str, schema: str, *topics: str,
                   batch_size: int = 1_000
                   ) -> AsyncIterator[tuple[AIOKafkaProducer, RuntimeMetrics, AIOKafkaConsumer]]:
    """A relay running on ``schema`` and a consumer of ``topics`` from the start."""
    producer = new_producer(_settings(database_url, bootstrap), "test-relay")
    await producer.start()
    metrics = RuntimeMetrics.create(CollectorRegistry())
    relay = OutboxRelay(dsn=database_url, schema=schema, producer=producer, metrics=metrics,
                        batch_size=batch_size, poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        yield producer, metrics, consumer
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await consumer.stop()
        await producer.stop()


async def emptied(pool: asyncpg.Pool, schema: str) -> None:
    async with asyncio.timeout(10):
        while await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox"):
            await asyncio.sleep(0.1)


async def test_relay_publishes_in_order_then_empties_the_outbox(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str) -> None:
    await db.migrate(pool, schema, None)
    topic = f"{schema}.events"
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, schema, [OutgoingRecord(topic, f"e{i}".encode(), b"same-key",
                                                         {"n": str(i)}) for i in range(50)])
    async with relaying(database_url, kafka_bootstrap, schema, topic) as (_, metrics, consumer):
        got: list[bytes] = []
        async with asyncio.timeout(30):
            while len(got) < 50:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [r.value for r in records]
        assert got == [f"e{i}".encode() for i in range(50)]
        await emptied(pool, schema)
        assert metrics.outbox_published._value.get() == 50


async def test_only_one_relay_is_active_per_schema(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str) -> None:
    await db.migrate(pool, schema, None)
    settings = _settings(database_url, kafka_bootstrap)
    producers = [new_producer(settings, f"p{i}") for i in range(2)]
    for p in producers:
        await p.start()
    relays = [OutboxRelay(dsn=database_url, schema=schema, producer=p,
                          metrics=RuntimeMetrics.create(CollectorRegistry()), poll_seconds=0.2)
              for p in producers]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        async with asyncio.timeout(10):
            while not any(r.is_leader for r in relays):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert sum(r.is_leader for r in relays) == 1
    finally:
        for r in relays:
            r.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for p in producers:
            await p.stop()


async def test_relay_keeps_each_keys_order_when_batches_fill_up(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str) -> None:
    await db.migrate(pool, schema, None)
    topic = f"{schema}.big"
    filler = b"x" * 40_000  # 30 records fill a 1 MB batch: this forces several per partition
    rows = [OutgoingRecord(topic, f"{i:04d}".encode() + filler, f"key-{i % 3}".encode())
            for i in range(120)]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, schema, rows)
    settings = _settings(database_url, kafka_bootstrap)
    await ensure_topics(settings.model_copy(update={"kafka_topic_partitions": 2}), [topic])
    producer = new_producer(settings, "test-big")
    await producer.start()
    relay = OutboxRelay(dsn=database_url, schema=schema, producer=producer,
                        metrics=RuntimeMetrics.create(CollectorRegistry()), poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
                                fetch_max_bytes=16 << 20)
    await consumer.start()
    try:
        seen: dict[bytes, list[int]] = {}
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < 120:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        seen.setdefault(r.key, []).append(int(r.value[:4]))
        assert seen == {
            f"key-{k}".encode(): list(range(k, 120, 3)) for k in range(3)}
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await consumer.stop()
        await producer.stop()


async def test_inbox_rows_past_the_retention_window_are_pruned(pool: asyncpg.Pool,
                                                               schema: str) -> None:
    await db.migrate(pool, schema, None)
    await pool.execute(
        f"INSERT INTO {schema}.inbox (event_id, received_at) SELECT 'old-' || g, "
        "now() - interval '40 days' FROM generate_series(1, 25000) g")
    await pool.execute(f"INSERT INTO {schema}.inbox (event_id) VALUES ('fresh')")
    async with pool.acquire() as conn:
        assert await retention.prune_inbox(conn, schema, timedelta(days=35)) == 25_000
        assert await retention.prune_inbox(conn, schema, timedelta(days=35)) == 0
    assert [r["event_id"] for r in await pool.fetch(f"SELECT event_id FROM {schema}.inbox")] \
        == ["fresh"]


async def test_relay_publishes_bundled_rows_record_by_record_in_order(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str) -> None:
    """A bulk handler's run of events is stored as a few rows; the relay, reading fewer
    records at a time than a row holds, still publishes each record once, in order per
    partition, where the producer's partitioner puts its key."""
    await db.migrate(pool, schema, None)
    topic, other = f"{schema}.events", f"{schema}.dlq"
    shared = {"content-type": "application/cloudevents+json"}
    staged = ([OutgoingRecord(topic, f"a{i}".encode(), f"k{i % 7}".encode(), shared)
               for i in range(3)]
              + [OutgoingRecord(other, b"odd one", b"x", {"dlq-reason-code": "MALFORMED"})]
              + [OutgoingRecord(topic, f"b{i}".encode(),
                                None if i % 50 == 0 else f"k{i % 7}".encode(), shared)
                 for i in range(outbox.BUNDLE_MAX * 2 + 34)])
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, schema, staged)
    counts = [r["records"] for r in await pool.fetch(
        f"SELECT records FROM {schema}.outbox ORDER BY id")]
    assert counts == [1, 1, 1, 1, outbox.BUNDLE_MAX, outbox.BUNDLE_MAX, 34]

    async with relaying(database_url, kafka_bootstrap, schema, topic, other,
                        batch_size=300) as (producer, metrics, consumer):
        got: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        async with asyncio.timeout(30):
            while sum(map(len, got.values())) < len(staged):
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    got.setdefault((tp.topic, tp.partition), []).extend(
                        (r.key, r.value) for r in records)
        partitions = {t: sorted(await producer.partitions_for(t)) for t in (topic, other)}
        for (t, part), published in got.items():
            expected = [(r.key, r.value) for r in staged if r.topic == t and (
                r.key is None or DefaultPartitioner()(r.key, partitions[t], partitions[t]) == part)]
            keyed = [kv for kv in published if kv[0] is not None]
            assert keyed == [kv for kv in expected if kv[0] is not None]
        assert sorted(kv for records in got.values() for kv in records
                      if kv[0] is None) == sorted((r.key, r.value) for r in staged
                                                  if r.key is None)
        await emptied(pool, schema)
        assert metrics.outbox_published._value.get() == len(staged)


async def test_an_outbox_of_the_earlier_one_record_format_keeps_its_rows(
        pool: asyncpg.Pool, schema: str) -> None:
    """Its ``value`` column becomes ``payload`` (a relay of that release then fails on the
    table instead of publishing a row of several records as one), and its rows still read."""
    await pool.execute(
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.outbox (id bigserial PRIMARY KEY, "
        "topic text NOT NULL, key bytea, value bytea NOT NULL, headers jsonb NOT NULL "
        "DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now())")
    await pool.execute(f"INSERT INTO {schema}.outbox (topic, key, value) VALUES ('t', 'k', 'v')")
    await db.migrate(pool, schema, None)
    await db.migrate(pool, schema, None)  # a second start changes nothing
    rows = outbox.unpack(await pool.fetch(f"SELECT {outbox.COLUMNS} FROM {schema}.outbox"))
    assert [(r.topic, r.key, r.value, r.headers) for r in rows] == [("t", b"k", b"v", {})]
    with pytest.raises(asyncpg.UndefinedColumnError):
        await pool.fetch(f"SELECT id, topic, key, value, headers FROM {schema}.outbox")
