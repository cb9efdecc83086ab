"""Turns a consumed batch into outcomes inside one Postgres transaction.

Per message: decode the envelope and data, skip ids the inbox has seen, run the handler in a
savepoint, and stage its events, a ``CommandRejected`` or a DLQ copy in the outbox. The batch
commits as a whole, then the consumer commits offsets: a crash in between replays the batch
and the inbox turns the replay into no-ops. Errors that say the database or network is gone
abort the batch so it is retried; any other handler failure is that message's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog
from aiokafka import ConsumerRecord
from pydantic import BaseModel, ValidationError

from mutualaid.contracts import Event, Message, ReasonCode, rejected, topics
from mutualaid.errors import RetryLater
from mutualaid.contracts.envelope import (
    STRUCTURED_CONTENT_TYPE, CloudEvent, EventWriter, decode, loose_id, now_iso, peek_attribute, peek_type,
    typed_envelope)

from . import inbox, outbox
from .metrics import RuntimeMetrics
from .outbox import OutgoingRecord
from .overlap import WriteBehind
from .router import BatchContext, HandlerContext, Rejected, Route, Router

log = structlog.get_logger(__name__)


#: Failures that say "try the whole batch again later", not "this message is bad".
#: InternalClientError ("cannot switch to state 15; another operation (2) is in progress"):
#: the backend was terminated between two statements and asyncpg's protocol is still
#: consuming the error; the connection is gone, the message is not at fault (issue 7, found
#: with pg_terminate_backend; tests/handlers/test_dispatch_connection_loss.py).
TRANSIENT = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
             asyncpg.SerializationError, asyncpg.DeadlockDetectedError,
             asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
             asyncpg.exceptions.InternalClientError, RetryLater)


@dataclass(frozen=True, slots=True)
class Decoded:
    record: ConsumerRecord
    event_id: str | None
    envelope: CloudEvent | None = None
    route: Route | None = None
    data: Message | None = None
    reason: ReasonCode | None = None
    error: str | None = None


_HEADERS = {"content-type": STRUCTURED_CONTENT_TYPE}


def event_id(cause_id: str, index: int) -> str:
    """An event's id derives from its cause, so a replayed batch re-creates the same ids and
    downstream inboxes drop the copies. BLAKE2b in UUID form: uuid5 cost more than the rest
    of a bulk import's per-member work."""
    digest = hashlib.blake2b(f"{cause_id}/{index}".encode(), digest_size=16).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def event_record(event: Event, *, writer: EventWriter, cause_id: str, index: int
                 ) -> OutgoingRecord:
    """Wrap an event for the outbox as a structured-mode CloudEvent keyed by its subject;
    ``writer`` is shared by the events of one message."""
    return OutgoingRecord(topic=event.topic(),
                          value=writer.encode(event, event_id(cause_id, index)),
                          key=event.subject().encode(), headers=_HEADERS)


class Dispatcher:
    def __init__(self, *, service: str, schema: str, router: Router, metrics: RuntimeMetrics,
                 resources: Any = None, max_message_bytes: int = 1_048_576,
                 allowed_sources: Mapping[str, Sequence[str]] | None = None) -> None:
        self.service = service
        self.source = f"mutualaid/{service}"
        self.schema = schema
        self.router = router
        self.metrics = metrics
        self.resources = resources
        self.max_message_bytes = max_message_bytes
        self.sources = SourcePolicy(allowed_sources or {})
        #: Set when the service starts; handed to handlers (see HandlerContext.producer).
        self.producer: Any = None

    async def process(self, pool: asyncpg.Pool, records: Sequence[ConsumerRecord]) -> None:
        started = time.perf_counter()
        try:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await self.process_in(conn, records)
            except TRANSIENT:
                raise
            except Exception:
                # Not the database, not a handler (a handler's failure is its message's
                # outcome): the dispatcher itself failed on something in the batch. Raising
                # would redeliver the batch, which fails the same way forever and stalls the
                # partition (the hostile-input fuzz found two such messages), so each message
                # is tried alone and one that still fails is refused alone.
                log.exception("batch failed; retrying its messages one by one",
                              size=len(records))
                await self._one_by_one(pool, records)
        except TRANSIENT as exc:
            log.warning("batch aborted, will be redelivered", error=repr(exc),
                        size=len(records))
            await asyncio.sleep(1.0)  # no hot loop while the database is away
            raise
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _one_by_one(self, pool: asyncpg.Pool, records: Sequence[ConsumerRecord]
                          ) -> None:
        for record in records:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await self.process_in(conn, [record])
                continue
            except TRANSIENT:
                raise  # the messages already done are in the inbox: redelivery skips them
            except Exception as exc:
                log.exception("message failed the dispatcher; refused", topic=record.topic,
                              partition=record.partition, offset=record.offset)
                error = _short(exc)
            item = Decoded(record, None)
            try:
                item = self._decode(record)
                ce = item.envelope
                out = self._refuse(item, ReasonCode.PROCESSING_FAILED, error,
                                   (ce.correlationid or ce.id) if ce else item.event_id)
            except Exception:  # what failed may be the rejection itself: the DLQ copy alone
                out = [self._dlq(item, ReasonCode.PROCESSING_FAILED, error)]
            async with pool.acquire() as conn, conn.transaction():
                await outbox.stage(conn, self.schema, out)

    async def process_in(self, conn: asyncpg.Connection, records: Sequence[ConsumerRecord]
                         ) -> None:
        decoded = [self._decode(r) for r in records]
        digests = {id(d): _digest(d) for d in decoded if _recorded(d)}
        fresh, first_seen = await inbox.claim(
            conn, self.schema, [(d.event_id, digests[id(d)]) for d in decoded  # type: ignore[misc]
                                if _recorded(d)])
        staged: list[OutgoingRecord] = []
        run: list[Decoded] = []  # consecutive messages for the same batch handler
        for item in decoded:
            if _recorded(item):
                assert item.event_id is not None
                if item.event_id not in fresh:
                    if first_seen.get(item.event_id, digests[id(item)]) not in (
                            None, digests[id(item)]):
                        # Same id, other content: not a replay. The first message keeps
                        # its one outcome; this one is kept for operators.
                        log.warning("message id reused for other content",
                                    event_id=item.event_id)
                        staged.append(self._dlq(item, ReasonCode.ID_REUSED,
                                                "an earlier message had this id"))
                        continue
                    self.metrics.duplicates.inc()
                    log.info("duplicate skipped", event_id=item.event_id)
                    continue
                fresh.discard(item.event_id)  # a second copy in this batch is a duplicate
                first_seen[item.event_id] = digests[id(item)]
            if item.reason is None and item.route is not None and item.route.batch:
                if run and run[0].route.handler is not item.route.handler:  # type: ignore[union-attr]
                    staged += await self._run(conn, run)
                    run = []
                run.append(item)
                continue
            if run:
                staged += await self._run(conn, run)
                run = []
            staged += await self._outcome(conn, item)
        if run:
            staged += await self._run(conn, run)
        await outbox.stage(conn, self.schema, staged)

    # -- decoding ---------------------------------------------------------------------

    def _decode(self, record: ConsumerRecord) -> Decoded:
        raw: bytes = record.value or b""
        if len(raw) > self.max_message_bytes:
            # Not parsed at all: the id, for the rejection, is picked from the first bytes.
            return Decoded(record, peek_attribute(raw[:4096], "id"), reason=ReasonCode.TOO_LARGE,
                           error=f"{len(raw)} bytes, above the limit of "
                                 f"{self.max_message_bytes}")
        decoded = self._parse(record, raw)
        if (decoded.reason is None and decoded.route is not None and b"\\u0000" in raw
                and _has_nul(decoded.data)):
            # Postgres refuses NUL in text and jsonb: a handler storing it failed (the fuzz
            # sent it in a name and a hospital). JSON carries NUL only escaped, so the bytes
            # are searched first and the data walked only when the escape is there.
            return Decoded(record, decoded.event_id, decoded.envelope, decoded.route,
                           reason=ReasonCode.INVALID_DATA,
                           error="data contains a NUL character (\\u0000), which cannot "
                                 "be stored")
        if (decoded.reason is None and decoded.route is not None and decoded.route.is_command
                and decoded.envelope is not None
                and not self.sources.allows(decoded.route.model.TYPE,
                                            decoded.envelope.source)):
            return Decoded(record, decoded.event_id, decoded.envelope, decoded.route,
                           reason=ReasonCode.UNAUTHORIZED_SOURCE,
                           error=f"source {decoded.envelope.source[:200]!r} may not send "
                                 f"{decoded.route.model.TYPE}")
        return decoded

    def _parse(self, record: ConsumerRecord, raw: bytes) -> Decoded:
        if (kind := peek_type(raw)) is not None and (
                route := self.router.lookup(record.topic, kind)) is not None:
            try:
                ce = typed_envelope(route.model).model_validate_json(raw)
            except ValidationError:
                pass  # the general path below says what is wrong
            else:
                if ce.type == kind:  # else a repeated "type" key: let the general path judge
                    return Decoded(record, ce.id, ce, route, ce.data)
        try:
            ce = decode(raw)
        except (ValueError, ValidationError) as exc:
            return Decoded(record, loose_id(raw), reason=ReasonCode.MALFORMED,
                           error=_short(exc))
        route = self.router.lookup(record.topic, ce.type)
        if route is None:
            if self.router.is_command_topic(record.topic):
                return Decoded(record, ce.id, ce, reason=ReasonCode.UNKNOWN_TYPE,
                               error=f"{ce.type} is not a command of {self.service}")
            return Decoded(record, None, ce)  # someone else's event: not ours to handle
        try:
            data = route.model.model_validate(ce.data)
        except ValidationError as exc:
            return Decoded(record, ce.id, ce, route, reason=ReasonCode.INVALID_DATA,
                           error=_short(exc))
        return Decoded(record, ce.id, ce, route, data)

    # -- outcomes ---------------------------------------------------------------------

    async def _outcome(self, conn: asyncpg.Connection, item: Decoded) -> list[OutgoingRecord]:
        ce = item.envelope
        correlationid = (ce.correlationid or ce.id) if ce else item.event_id
        type_name = ce.type if ce else "unreadable"
        with structlog.contextvars.bound_contextvars(
                correlationid=correlationid, event_id=item.event_id, type=type_name):
            if item.reason is not None:
                return self._refuse(item, item.reason, item.error or "", correlationid)
            if item.route is None or item.data is None:
                return []
            writes = WriteBehind()
            try:
                async with conn.transaction():
                    try:
                        events = await item.route.handler(
                            item.data,
                            HandlerContext(conn, ce, self.resources, self.producer, writes))
                        records = await self._encode(ce, events, writes)
                    except BaseException:
                        await writes.abandon()
                        raise
                    await writes.finish()
            except Rejected as r:
                return self._reject(item, r.reason_code, r.message, correlationid)
            except TRANSIENT:
                raise
            except Exception as exc:  # a bug or bad state must not block the partition
                log.exception("handler failed")
                return self._refuse(item, ReasonCode.PROCESSING_FAILED, _short(exc),
                                    correlationid)
            self.metrics.messages.labels(ce.type, "ok").inc()
            return records

    async def _run(self, conn: asyncpg.Connection, run: list[Decoded]) -> list[OutgoingRecord]:
        """A batch handler decides the whole run in one savepoint. If it fails as a whole
        (a bug, or a constraint another writer won), each message is retried alone so only
        the one at fault is refused."""
        route = run[0].route
        assert route is not None
        writes = WriteBehind()
        try:
            async with conn.transaction():
                try:
                    outcomes = await route.handler(  # type: ignore[call-arg]
                        [i.data for i in run],
                        BatchContext(conn, [i.envelope for i in run], self.resources, writes))
                    if len(outcomes) != len(run):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(run)} messages")
                    encoded = [[] if isinstance(outcome, Rejected) else
                               await self._encode(item.envelope, outcome, writes)  # type: ignore[arg-type]
                               for item, outcome in zip(run, outcomes, strict=True)]
                except BaseException:
                    await writes.abandon()
                    raise
                await writes.finish()
        except TRANSIENT:
            raise
        except Exception as exc:
            if len(run) > 1:
                log.warning("batch handler failed; retrying one by one", error=_short(exc),
                            size=len(run))
                out: list[OutgoingRecord] = []
                for item in run:
                    out += await self._run(conn, [item])
                return out
            log.exception("handler failed")
            item = run[0]
            ce = item.envelope
            return self._refuse(item, ReasonCode.PROCESSING_FAILED, _short(exc),
                                (ce.correlationid or ce.id) if ce else None)
        out = []
        for item, outcome, records in zip(run, outcomes, encoded, strict=True):
            ce = item.envelope
            assert ce is not None
            if isinstance(outcome, Rejected):
                correlationid = ce.correlationid or ce.id
                with structlog.contextvars.bound_contextvars(correlationid=correlationid,
                                                             event_id=ce.id, type=ce.type):
                    out += self._reject(item, outcome.reason_code, outcome.message,
                                        correlationid)
                continue
            self.metrics.messages.labels(ce.type, "ok").inc()
            out += records
        return out

    async def _encode(self, ce: CloudEvent, events: Sequence[Event], writes: WriteBehind
                      ) -> list[OutgoingRecord]:
        """A handled message's events for the outbox, stamped with one time. While the
        handler's write runs, the encoding gives it turns (see WriteBehind)."""
        if not events:
            return []
        writer = EventWriter(source=self.source, time=now_iso(),
                             correlationid=ce.correlationid or ce.id)
        out = []
        for i, e in enumerate(events):
            out.append(event_record(e, writer=writer, cause_id=ce.id, index=i))
            await writes.breathe()
        return out

    def _refuse(self, item: Decoded, reason: ReasonCode, error: str,
                correlationid: str | None) -> list[OutgoingRecord]:
        """Unreadable or failed: always a DLQ copy; a rejection too when it was a command."""
        out = [self._dlq(item, reason, error)]
        log.warning("message refused", reason_code=reason.value, error=error,
                    topic=item.record.topic, offset=item.record.offset)
        is_command = item.route.is_command if item.route else self.router.is_command_topic(
            item.record.topic)
        if is_command and item.event_id is not None:
            out += self._reject(item, reason.value, error, correlationid)
        elif not is_command:
            self.metrics.messages.labels(_type(item), "dlq").inc()
        return out

    def _reject(self, item: Decoded, reason_code: str, message: str,
                correlationid: str | None) -> list[OutgoingRecord]:
        assert item.event_id is not None
        self.metrics.rejected.labels(reason_code).inc()
        self.metrics.messages.labels(_type(item), "rejected").inc()
        log.info("command rejected", reason_code=reason_code, detail=message)
        event = rejected(self.service, command_id=item.event_id, command_type=_type(item),
                         reason_code=reason_code, message=message)
        writer = EventWriter(source=self.source, time=now_iso(), correlationid=correlationid)
        return [event_record(event, writer=writer, cause_id=item.event_id, index=0)]

    def _dlq(self, item: Decoded, reason: ReasonCode, error: str) -> OutgoingRecord:
        rec = item.record
        self.metrics.dlq.labels(rec.topic).inc()
        return OutgoingRecord(
            topic=topics.dlq(self.service), value=rec.value or b"", key=rec.key,
            headers={"dlq-reason-code": reason.value,
                     "dlq-error": _UNPRINTABLE.sub("?", error[:4000]),
                     "dlq-source-topic": rec.topic, "dlq-source-partition": str(rec.partition),
                     "dlq-source-offset": str(rec.offset), "dlq-service": self.service})


def _digest(item: Decoded) -> bytes:
    """What makes two messages with one id the same message: their type and data (not the
    bytes: a sender re-sending a command re-encodes it, with a new ``time``)."""
    if item.envelope is None:
        return inbox.digest(item.record.value or b"")
    data = item.data if item.data is not None else item.envelope.data
    if isinstance(data, BaseModel):  # decoded in one pass with a typed envelope
        data = data.model_dump(mode="json")
    try:
        doc = orjson.dumps([item.envelope.type, data], option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits, which orjson refuses (found by the fuzz)
        doc = json.dumps([item.envelope.type, data], sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return inbox.digest(doc)


def _has_nul(data: Any) -> bool:
    """Whether any string (or key) in the message's data holds a NUL character."""
    stack = [data.model_dump() if isinstance(data, BaseModel) else data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack += value.keys()
            stack += value.values()
        elif isinstance(value, list | tuple):
            stack += value
        elif isinstance(value, BaseModel):
            stack.append(value.model_dump())
    return False


def _recorded(item: Decoded) -> bool:
    """Whether the inbox records this message: it has an id, and it is not an event a
    projection applies idempotently (see Route.idempotent)."""
    return item.event_id is not None and not (
        item.route is not None and item.route.idempotent and item.reason is None)


def _type(item: Decoded) -> str:
    if item.route is not None:
        return item.route.model.TYPE
    return item.envelope.type if item.envelope else "unreadable"


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _short(exc: BaseException) -> str:
    """The error as operators read it in the DLQ headers and the rejection. Control
    characters from hostile input are replaced: Postgres refuses NUL in text and jsonb,
    and a failed write would fail (and replay) the whole batch."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False))
        text = f"{exc.title}: {problems}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _UNPRINTABLE.sub("?", text[:2000])


class SourcePolicy:
    """Who may send which command: exact CloudEvents ``source`` values, or prefixes ending
    in ``*``; the ``"*"`` entry covers commands not named. No entries at all: anyone may
    send anything (development); once configured, a command nobody is named for is
    refused."""

    def __init__(self, allowed: Mapping[str, Sequence[str]]) -> None:
        # Keys may name a command as "ReviewClaim" or "claims.ReviewClaim".
        self._allowed = {k.rsplit(".", 1)[-1]: tuple(v) for k, v in allowed.items()}

    def allows(self, command_type: str, source: str) -> bool:
        if not self._allowed:
            return True
        patterns = self._allowed.get(command_type.rsplit(".", 1)[-1], self._allowed.get("*"))
        if patterns is None:
            return False  # configured, but not for this command: closed, not open
        return any(source == p or (p.endswith("*") and source.startswith(p[:-1]))
                   for p in patterns)
