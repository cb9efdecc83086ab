"""A small Kafka client for the platform, as an integrating service would use it: send
commands as CloudEvents, read every event topic. The demo and the end-to-end tests use it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from mutualaid.contracts import Command, topics
from mutualaid.contracts.envelope import (
    JSON, SPECVERSION, STRUCTURED_CONTENT_TYPE, CloudEvent, decode, new_id)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    value: bytes
    headers: dict[str, str]


def command_event(command: Command, *, source: str, id: str | None = None,
                  correlationid: str | None = None) -> bytes:
    event_id = id or new_id()
    return orjson.dumps({
        "specversion": SPECVERSION, "id": event_id, "source": source, "type": command.TYPE,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "subject": command.subject(), "datacontenttype": JSON,
        "correlationid": correlationid or event_id, "data": command.model_dump(mode="json"),
    })


async def seek_to_end(consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *,
                      timeout: float = 10.0) -> None:
    """Position assigned partitions at their end, as it is now.

    ``seek_to_end`` alone is not enough on the development broker: tansu answers
    ListOffsets(latest) with the first offset of the last record batch plus one, so the last
    records of a batch would still follow. The high watermark of a fetch is right, so read
    (and drop) until every partition has reached it."""
    await consumer.seek_to_end(*partitions)
    deadline = time.monotonic() + timeout
    while True:
        behind = []
        for tp in partitions:
            high = consumer.highwater(tp)
            if high is None or await consumer.position(tp) < high:
                behind.append(tp)
        if not behind or time.monotonic() > deadline:
            return
        await consumer.getmany(*behind, timeout_ms=100, max_records=10_000)


class PlatformClient:
    """``read_topics``: what to read (default: every event topic, the payment instructions
    and every DLQ). ``from_end``: read only what is written after ``__aenter__`` returns,
    not the topics' history (an operator's tool on a platform with millions of events)."""

    def __init__(self, bootstrap: str, *, source: str = "mutualaid/client",
                 read_topics: Sequence[str] | None = None, from_end: bool = False) -> None:
        self.bootstrap = bootstrap
        self.source = source
        self.read_topics = list(read_topics) if read_topics is not None else [
            *[topics.events(s) for s in topics.SERVICES], topics.PAYMENT_INSTRUCTIONS,
            *[topics.dlq(s) for s in topics.SERVICES]]
        self.from_end = from_end
        self.events: list[CloudEvent] = []
        self.by_type: dict[str, list[CloudEvent]] = defaultdict(list)
        self.by_correlation: dict[str, list[CloudEvent]] = defaultdict(list)
        self.dead_letters: list[DeadLetter] = []
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self._consumer = AIOKafkaConsumer(
            *([] if from_end else self.read_topics), bootstrap_servers=bootstrap,
            group_id=None, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> PlatformClient:
        await self._producer.start()
        try:
            await self._consumer.start()
            if self.from_end:
                await self._assign_at_end()
        except BaseException:
            await self._consumer.stop()
            await self._producer.stop()
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def _assign_at_end(self) -> None:
        """Every partition of the topics, positioned at their current end before anything
        is sent, so no answer to a command sent next can be missed."""
        await self._consumer.topics()  # fetches the cluster metadata
        partitions = [TopicPartition(t, p) for t in self.read_topics
                      for p in sorted(self._consumer.partitions_for_topic(t) or ())]
        if not partitions:
            raise ValueError(f"none of the topics exists on the broker: {self.read_topics}")
        self._consumer.assign(partitions)
        await seek_to_end(self._consumer, partitions)

    async def __aexit__(self, *_: object) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._consumer.stop()
        await self._producer.stop()

    async def send(self, command: Command, *, id: str | None = None,
                   correlationid: str | None = None) -> str:
        """Send one command (keyed by its subject); returns its CloudEvent id."""
        event_id = id or new_id()
        await self._producer.send(topics.commands(command.service()),
                                  command_event(command, source=self.source, id=event_id,
                                                correlationid=correlationid),
                                  key=command.subject().encode(),
                                  headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())])
        return event_id

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None, *,
                       wait: bool = True) -> None:
        """``wait=False`` only queues the record (call ``flush`` after a burst)."""
        if wait:
            await self._producer.send_and_wait(topic, value, key=key)
        else:
            await self._producer.send(topic, value, key=key)

    async def flush(self) -> None:
        await self._producer.flush()

    def of_type(self, type_name: str) -> list[CloudEvent]:
        return list(self.by_type.get(type_name, ()))

    def caused_by(self, command_id: str) -> list[CloudEvent]:
        """Events whose correlation id is this command's id (the default correlation)."""
        return list(self.by_correlation.get(command_id, ()))

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str,
                         progress: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if progress:
                progress()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass

    async def wait_count(self, type_name: str, count: int, *, timeout: float,
                         progress: Callable[[int], None] | None = None) -> list[CloudEvent]:
        await self.wait_until(lambda: len(self.by_type.get(type_name, ())) >= count,
                              timeout=timeout, what=f"{count} x {type_name}",
                              progress=(lambda: progress(len(self.by_type.get(type_name, ()))))
                              if progress else None)
        return self.of_type(type_name)

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    self._take(record)
            if batch:
                self._changed.set()

    def _take(self, record: ConsumerRecord) -> None:
        if record.topic.endswith(".dlq"):
            self.dead_letters.append(DeadLetter(
                record.topic, record.value or b"",
                {k: v.decode(errors="replace") for k, v in record.headers or ()}))
            return
        try:
            event = decode(record.value or b"")
        except ValueError:
            log.warning("unreadable event", topic=record.topic, offset=record.offset)
            return
        self.events.append(event)
        self.by_type[event.type].append(event)
        if event.correlationid:
            self.by_correlation[event.correlationid].append(event)
