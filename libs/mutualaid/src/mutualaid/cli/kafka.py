"""The CLI's Kafka side: send a command and wait for its outcome, read a topic, read and
replay a dead-letter queue. Everything reads from the topics' current end unless told
otherwise, and with consumers of no group, so an operator's tool never moves a service's
offsets."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from mutualaid.client import PlatformClient, command_event, seek_to_end
from mutualaid.contracts import Command, topics
from mutualaid.contracts.envelope import (
    STRUCTURED_CONTENT_TYPE, CloudEvent, decode, loose_id, new_id, peek_type)

from .output import TIMED_OUT, UNAVAILABLE, CliError

#: After the first answer to a command, how long to keep listening for the rest of its
#: events (a command's events are written together, so they arrive together).
SETTLE_SECONDS = 1.0
REPLAY_HEADER = "dlq-replayed-from"


def _unreachable(bootstrap: str, exc: BaseException) -> CliError:
    return CliError(f"cannot reach the Kafka broker at {bootstrap} ({exc}); is the platform "
                    "up (`make up`)? Set --bootstrap or KAFKA_BOOTSTRAP_SERVERS.", UNAVAILABLE)


@asynccontextmanager
async def platform_client(bootstrap: str, *, source: str, read: Sequence[str]
                          ) -> AsyncIterator[PlatformClient]:
    """A client reading ``read`` from their current end; broker trouble becomes a CliError."""
    client = PlatformClient(bootstrap, source=source, read_topics=read, from_end=True)
    try:
        await client.__aenter__()
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    except ValueError as exc:  # the topics do not exist
        raise CliError(f"{exc}: have the services started on {bootstrap}?",
                       UNAVAILABLE) from None
    try:
        yield client
    finally:
        await client.__aexit__(None, None, None)


@dataclass
class Request:
    """A command sent and what came back for it (events whose correlation id is its id)."""

    command: Command
    id: str
    correlationid: str
    events: list[CloudEvent]
    timed_out: bool = False

    @property
    def rejection(self) -> CloudEvent | None:
        return next((e for e in self.events if e.type.endswith(".CommandRejected")), None)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.command.TYPE, "subject": self.command.subject(),
                "topic": topics.commands(self.command.service()),
                "correlationid": self.correlationid}


async def request(bootstrap: str, command: Command, *, source: str, wait: float,
                  id: str | None = None, correlationid: str | None = None,
                  until: Callable[[list[CloudEvent]], bool] | None = None) -> Request:
    """Send ``command`` and wait up to ``wait`` seconds for its outcome on its service's
    events topic: until ``until(events)`` holds, or by default until the first event and a
    short quiet moment after it."""
    service = command.service()
    command_id = id or new_id()
    key = correlationid or command_id
    async with platform_client(bootstrap, source=source, read=[topics.events(service)]
                               ) as client:
        try:
            await client.send(command, id=command_id, correlationid=correlationid)
            await client.flush()
        except KafkaError as exc:
            raise _unreachable(bootstrap, exc) from None
        done = until or (lambda events: bool(events))
        result = Request(command, command_id, key, [])
        try:
            await client.wait_until(lambda: done(client.caused_by(key)), timeout=wait,
                                    what=f"the outcome of {command.TYPE}")
        except TimeoutError:
            result.timed_out = True
        if until is None and not result.timed_out:
            seen = -1
            while seen != len(client.caused_by(key)):
                seen = len(client.caused_by(key))
                await asyncio.sleep(SETTLE_SECONDS)
        result.events = client.caused_by(key)
        return result


def no_answer(service: str, command_id: str, wait: float) -> CliError:
    return CliError(f"no answer from {service} within {wait:g} s. The command was sent (id "
                    f"{command_id}); is {service} running? Its outcome will still appear on "
                    f"{topics.events(service)} (`mutualaid tail {topics.events(service)}`).",
                    TIMED_OUT)


async def send_only(bootstrap: str, command: Command, *, source: str, id: str | None = None,
                    correlationid: str | None = None) -> str:
    """Send without waiting for an answer (``--no-wait``); returns the command's id."""
    command_id = id or new_id()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    try:
        await producer.start()
        await producer.send_and_wait(
            topics.commands(command.service()),
            command_event(command, source=source, id=command_id, correlationid=correlationid),
            key=command.subject().encode(),
            headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())])
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    finally:
        await producer.stop()
    return command_id


# -- reading topics -------------------------------------------------------------------------

@asynccontextmanager
async def assigned_consumer(bootstrap: str, topic: str, *, from_beginning: bool
                            ) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer of no group on every partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    try:
        await consumer.start()
        existing = await consumer.topics()
    except KafkaError as exc:
        await consumer.stop()
        raise _unreachable(bootstrap, exc) from None
    try:
        if topic not in existing:
            known = sorted(t for t in existing if not t.startswith("__"))
            raise CliError(f"no topic {topic!r} on {bootstrap}; topics: {', '.join(known)}")
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
            for tp in partitions:  # fix the positions now
                await consumer.position(tp)
        else:
            await seek_to_end(consumer, partitions)
        yield consumer, partitions
    except KafkaConnectionError as exc:
        raise _unreachable(bootstrap, exc) from None
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    """Stop within a few seconds: on Ctrl-C the consumer can be caught mid-fetch, and its
    stop then waited on a fetch the broker never answered, so the command hung."""
    try:
        await asyncio.wait_for(consumer.stop(), 5)
    except (TimeoutError, KafkaError):
        pass


async def read_all(bootstrap: str, topic: str, *, idle_seconds: float = 10.0
                   ) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning up to its end as of now (the fetches'
    high watermark: see ``mutualaid.client.seek_to_end`` for why not ListOffsets)."""
    records: list[ConsumerRecord] = []
    async with assigned_consumer(bootstrap, topic, from_beginning=True) as (consumer, parts):
        ends: dict[TopicPartition, int] = {}
        pending = list(parts)
        last_progress = time.monotonic()
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=200, max_records=5000)
            for recs in batch.values():
                records += recs
            if batch:
                last_progress = time.monotonic()
            for tp in list(pending):
                # The end is the high watermark of the first fetch: later records wait.
                if tp not in ends and consumer.highwater(tp) is not None:
                    ends[tp] = consumer.highwater(tp)  # type: ignore[assignment]
                if tp in ends and await consumer.position(tp) >= ends[tp]:
                    pending.remove(tp)
            if pending and time.monotonic() - last_progress > idle_seconds:
                raise CliError(f"reading {topic} stalled short of its end", UNAVAILABLE)
    records = [r for r in records if r.offset < ends.get(TopicPartition(r.topic, r.partition),
                                                         r.offset + 1)]
    records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
    return records


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}


def record_time(record: ConsumerRecord) -> str:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def decode_or_none(record: ConsumerRecord) -> CloudEvent | None:
    try:
        return decode(record.value or b"")
    except ValueError:
        return None


# -- dead letters ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp: str
    headers: dict[str, str]
    key: bytes | None
    value: bytes

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source_topic(self) -> str | None:
        return self.headers.get("dlq-source-topic")

    @property
    def event_id(self) -> str | None:
        """The CloudEvent id, when one can be read: the service's inbox has recorded it."""
        return loose_id(self.value)

    def as_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition, "offset": self.offset, "ref": self.ref,
            "timestamp": self.timestamp,
            "reason_code": self.headers.get("dlq-reason-code"),
            "error": self.headers.get("dlq-error"),
            "source_topic": self.source_topic,
            "source_partition": _int(self.headers.get("dlq-source-partition")),
            "source_offset": _int(self.headers.get("dlq-source-offset")),
            "type": peek_type(self.value), "id": self.event_id,
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "value": self.value.decode("utf-8", "replace"),
        }


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


async def dead_letters(bootstrap: str, service: str) -> list[DeadLetter]:
    return [DeadLetter(r.partition, r.offset, record_time(r), headers_of(r), r.key,
                       r.value or b"")
            for r in await read_all(bootstrap, topics.dlq(service))]


def select(letters: Sequence[DeadLetter], refs: Sequence[str], dlq: str) -> list[DeadLetter]:
    """The dead letters named by ``partition:offset`` (or a bare offset, when only one
    partition has it)."""
    chosen: list[DeadLetter] = []
    for ref in refs:
        part, _, off = ref.rpartition(":")
        try:
            offset, partition = int(off), (int(part) if part else None)
        except ValueError:
            raise CliError(f"--offset {ref!r}: give an offset (42) or partition:offset "
                           "(0:42) as `mutualaid dlq list` shows it") from None
        hits = [d for d in letters if d.offset == offset
                and (partition is None or d.partition == partition)]
        if not hits:
            raise CliError(f"no dead letter at {ref} in {dlq} (see `mutualaid dlq list`)")
        if len(hits) > 1:
            where = ", ".join(d.ref for d in hits)
            raise CliError(f"offset {offset} is in several partitions of {dlq} ({where}): "
                           "name one as partition:offset")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return chosen


def with_new_id(letter: DeadLetter) -> tuple[bytes, str | None]:
    """The letter as a new message: the same CloudEvent under a new id (derived from the old
    one and the letter's place in the DLQ, so replaying one letter twice still counts once),
    correlated with the original. A letter with no readable id is returned as it is."""
    try:
        doc = orjson.loads(letter.value)
    except orjson.JSONDecodeError:
        return letter.value, None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
        return letter.value, None
    old = doc["id"]
    new = f"{old}+replay-{letter.partition}-{letter.offset}"
    if len(new) > 256:
        digest = hashlib.blake2b(old.encode(), digest_size=16).hexdigest()
        new = f"replay-{digest}-{letter.partition}-{letter.offset}"
    doc["id"] = new
    doc.setdefault("correlationid", old)
    return orjson.dumps(doc), new


async def replay(bootstrap: str, service: str, letters: Sequence[DeadLetter], *,
                 new_id: bool = False) -> list[dict[str, Any]]:
    """Publish each letter's original bytes, with its original key, to the topic it came
    from (``new_id``: as a new message, see ``with_new_id``). Letters without a known
    source topic are skipped and said so."""
    known = set(topics.all_topics())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise _unreachable(bootstrap, exc) from None
    done: list[dict[str, Any]] = []
    try:
        for letter in letters:
            value, renamed = with_new_id(letter) if new_id else (letter.value, None)
            entry = {"ref": letter.ref, "source_topic": letter.source_topic,
                     "reason_code": letter.headers.get("dlq-reason-code"),
                     "id": letter.event_id, "new_id": renamed}
            if letter.source_topic not in known:
                done.append({**entry, "replayed": False,
                             "why": f"source topic {letter.source_topic!r} is not a platform "
                                    "topic"})
                continue
            meta = await producer.send_and_wait(
                letter.source_topic, value, key=letter.key,
                headers=[(REPLAY_HEADER, f"{topics.dlq(service)}:{letter.ref}".encode())])
            done.append({**entry, "replayed": True, "partition": meta.partition,
                         "offset": meta.offset})
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    finally:
        await producer.stop()
    return done

