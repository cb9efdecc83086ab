"""Transactional outbox: events are rows written in the same transaction as the state change;
a relay publishes them to Kafka at least once, in insertion order.

One relay per schema is active at a time (a session advisory lock elects it), which keeps
per-key order across replicas; the others stand by and take over when its connection drops.
Every relay, active or standing by, reports the backlog (``mutualaid_outbox_pending``,
``mutualaid_outbox_oldest_age_seconds``), so it shows even while no relay holds the lease.
A relay never ends but on ``stop()``: any failure is logged and the relay starts over.

A run of records for one topic with the same headers (a bulk import's 2,000 MemberJoined)
is stored in rows of up to ``BUNDLE_MAX`` records, each row's ``payload`` framing them
(``records`` says how many): a few rows to write, read and delete instead of thousands.
Order is unchanged: rows in id order, the records of a row in their order.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from .metrics import RuntimeMetrics
from .partitioning import partitions_for_keys

log = structlog.get_logger(__name__)
_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def channel(schema: str) -> str:
    return f"{schema}_outbox"


#: From this many consecutive records for one topic with the same headers, a run is stored as
#: rows of several records.
BUNDLE_MIN = 16
#: Records per row at most: bounds one row's size and what the relay holds at once.
BUNDLE_MAX = 500
#: The columns ``unpack`` reads.
COLUMNS = "id, topic, key, payload, headers, records"
#: Each record of a row: key length (-1: no key), value length, then the bytes.
_FRAME = struct.Struct(">iI")


class Staged(NamedTuple):
    """A record as the outbox holds it, with the id of the row that holds it."""

    row_id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


async def stage(conn: asyncpg.Connection, schema: str, records: Sequence[OutgoingRecord]) -> None:
    """Queue records inside the caller's transaction; NOTIFY wakes the relay on commit."""
    if not records:
        return
    await conn.copy_records_to_table(
        "outbox", schema_name=schema, columns=["topic", "key", "payload", "headers", "records"],
        records=_rows(records))
    await conn.execute("SELECT pg_notify($1, '')", channel(schema))


def _rows(records: Sequence[OutgoingRecord], bundle_min: int = BUNDLE_MIN,
          bundle_max: int = BUNDLE_MAX) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    headers: dict[int, str] = {}  # most records share one headers dict: encode it once
    start = 0
    for end in range(1, len(records) + 1):
        if end < len(records) and _same_run(records[end - 1], records[end]):
            continue
        run, start = records[start:end], end
        first = run[0]
        encoded = headers.get(id(first.headers)) or headers.setdefault(
            id(first.headers), orjson.dumps(first.headers).decode())
        if len(run) < bundle_min:
            rows += [(r.topic, r.key, r.value, encoded, 1) for r in run]
            continue
        for at in range(0, len(run), bundle_max):
            part = run[at:at + bundle_max]
            rows.append((first.topic, None, _pack(part), encoded, len(part)) if len(part) > 1
                        else (first.topic, part[0].key, part[0].value, encoded, 1))
    return rows


def _same_run(a: OutgoingRecord, b: OutgoingRecord) -> bool:
    return a.topic == b.topic and (a.headers is b.headers or a.headers == b.headers)


def _pack(records: Sequence[OutgoingRecord]) -> bytes:
    parts: list[bytes] = []
    for r in records:
        parts.append(_FRAME.pack(-1 if r.key is None else len(r.key), len(r.value)))
        if r.key is not None:
            parts.append(r.key)
        parts.append(r.value)
    return b"".join(parts)


def unpack(rows: Sequence[asyncpg.Record]) -> list[Staged]:
    """The records that outbox rows (``id, topic, key, payload, headers, records``) hold, in
    order."""
    out: list[Staged] = []
    headers: dict[str, dict[str, str]] = {}
    for row in rows:
        raw = row["headers"]
        if (decoded := headers.get(raw)) is None:
            decoded = headers[raw] = orjson.loads(raw)
        row_id, topic, payload, count = row["id"], row["topic"], row["payload"], row["records"]
        if count == 1:
            out.append(Staged(row_id, topic, row["key"], payload, decoded))
            continue
        at = 0
        for _ in range(count):
            key_length, value_length = _FRAME.unpack_from(payload, at)
            at += _FRAME.size
            key = None
            if key_length >= 0:
                key, at = payload[at:at + key_length], at + key_length
            out.append(Staged(row_id, topic, key, payload[at:at + value_length], decoded))
            at += value_length
        if at != len(payload):
            raise ValueError(f"outbox row {row_id} does not frame exactly its {count} records")
    return out


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big",
                          signed=True)


async def _close(conn: asyncpg.Connection) -> None:
    """Close, or drop the socket if a clean close fails (a connection already broken, a
    server that does not answer): closing must not be what ends the relay."""
    try:
        await conn.close(timeout=5)
    except Exception:  # noqa: BLE001 - any failure: the connection is unusable anyway
        conn.terminate()


class OutboxRelay:
    def __init__(self, *, dsn: str, schema: str, producer: AIOKafkaProducer,
                 metrics: RuntimeMetrics, batch_size: int = 1000,
                 poll_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._schema = schema
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.is_leader = False
        self._pending_counted_at = float("-inf")

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings={
                    "application_name": f"{self._schema} outbox relay"})
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)",
                                           _lock_key(self._schema)):
                    # Standing by: report the backlog all the same. Were only the leader to
                    # report it, a backlog with no leader (its lease lost, held elsewhere)
                    # would show the last leader's figures for good, 0 most likely.
                    await self._count_pending(conn)
                    await self._sleep(max(self._poll, 2.0))
                    continue
                self.is_leader = True
                log.info("outbox relay active", schema=self._schema)
                await conn.add_listener(channel(self._schema), self._on_notify)
                await self._relay(conn)
                backoff = 0.5
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.exceptions.InternalClientError, KafkaError) as exc:
                # InternalClientError: a connection terminated between two statements.
                log.warning("outbox relay interrupted", error=repr(exc), retry_in=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 15.0)
            except Exception:
                # Anything else (a bug, a row the producer refuses) must not end the relay
                # for good: the service would look healthy while its events pile up.
                log.exception("outbox relay failed", retry_in=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 15.0)
            finally:
                self.is_leader = False
                if conn is not None:
                    await _close(conn)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _relay(self, conn: asyncpg.Connection) -> None:
        # On stop, drain what is committed before giving up the lease.
        while True:
            self._wake.clear()
            sent = await self.publish_pending(conn)
            if sent:
                continue
            if self._stopping.is_set():
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll)
            except TimeoutError:
                pass

    async def _send(self, records: list[Staged]) -> list[asyncio.Future[object]]:
        """Queue the records as one record batch per partition, in order; the returned
        futures complete on the broker's acknowledgement.

        Building batches here costs a fraction of one ``send()`` per record (measured with
        the relay alone). Order per partition holds: batches of a partition are queued in
        record order, and the producer keeps one request per broker in flight and a partition
        muted while its batch is in flight. Keys are placed by the producer's murmur2
        partitioning (``_partitions``), so a key lands where ``send()`` would put it."""
        futures: list[asyncio.Future[object]] = []
        open_batches: dict[tuple[str, int], BatchBuilder] = {}
        headers: dict[int, list[tuple[str, bytes]]] = {}
        for r, part in zip(records, await self._partitions(records), strict=True):
            if (record_headers := headers.get(id(r.headers))) is None:
                record_headers = headers[id(r.headers)] = [
                    (k, v.encode()) for k, v in r.headers.items()]
            batch = open_batches.get((r.topic, part))
            if batch is None:
                batch = open_batches[(r.topic, part)] = self._producer.create_batch()
            if batch.append(key=r.key, value=r.value, timestamp=None,
                            headers=record_headers) is None:  # full: send it, start another
                batch.close()
                futures.append(await self._producer.send_batch(batch, r.topic, partition=part))
                batch = open_batches[(r.topic, part)] = self._producer.create_batch()
                if batch.append(key=r.key, value=r.value, timestamp=None,
                                headers=record_headers) is None:
                    raise ValueError(f"a record of outbox row {r.row_id} does not fit in a "
                                     "Kafka batch")
        for (topic, part), batch in open_batches.items():
            batch.close()
            futures.append(await self._producer.send_batch(batch, topic, partition=part))
        return futures

    async def _partitions(self, records: list[Staged]) -> list[int]:
        """Each record's partition: keyed records as the producer's murmur2 partitioner
        places them (hashed for the whole batch at once), unkeyed ones wherever it would."""
        by_topic: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_topic.setdefault(r.topic, []).append(i)
        placed = [0] * len(records)
        for topic, indexes in by_topic.items():
            partitions = sorted(await self._producer.partitions_for(topic))
            keyed = [i for i in indexes if records[i].key is not None]
            for i, part in zip(keyed, partitions_for_keys(
                    [records[i].key for i in keyed], partitions), strict=True):  # type: ignore[misc]
                placed[i] = part
            for i in indexes:
                if records[i].key is None:
                    placed[i] = _PARTITIONER(None, partitions, partitions)
        return placed

    async def _count_pending(self, conn: asyncpg.Connection) -> None:
        pending, age = await conn.fetchrow(
            "SELECT COALESCE(sum(records), 0), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - "
            f"min(created_at)), 0)::float8 FROM {self._schema}.outbox")
        self._metrics.outbox_pending.set(pending)
        self._metrics.outbox_oldest_age.set(max(age, 0.0))

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        # Rows in id order until they hold batch_size records (always at least one row).
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM (SELECT {COLUMNS}, "
            "sum(records) OVER (ORDER BY id) - records AS before "
            f"FROM {self._schema}.outbox ORDER BY id LIMIT $1) o WHERE before < $1 ORDER BY id",
            self._batch_size)
        if not rows:
            self._metrics.outbox_pending.set(0)
            self._metrics.outbox_oldest_age.set(0)
            return 0
        # Counting a large backlog costs as much as relaying a batch of it: refresh the
        # gauges at most once a second, not after every batch. Before sending, so that
        # they keep rising while Kafka refuses the batch (the relay retries it).
        now = asyncio.get_running_loop().time()
        if now - self._pending_counted_at >= 1.0:
            self._pending_counted_at = now
            await self._count_pending(conn)
        records = unpack(rows)
        await asyncio.gather(*await self._send(records))
        await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])",
                           [r["id"] for r in rows])
        self._metrics.outbox_published.inc(len(records))
        return len(records)
