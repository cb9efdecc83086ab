"""Every inbound message gets exactly one outcome, in one transaction with its effects."""

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
from mutualaid.runtime import BatchContext, HandlerContext, Router, db
from mutualaid.runtime import outbox as outbox_rows
from mutualaid.runtime.dispatch import Dispatcher, SourcePolicy
from mutualaid.runtime.metrics import RuntimeMetrics

pytestmark = [pytest.mark.handler, pytest.mark.integration]


def record(value: bytes, offset: int, topic: str = "jury.commands") -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def qualify(member_id: str, score: int = 90) -> QualifyJuror:
    return QualifyJuror(member_id=member_id, exam_score=score, qualified_on=date(2020, 1, 1))


def build(schema: str, fail: dict[str, Exception] | None = None) -> Dispatcher:
    router = Router("jury")

    @router.command(QualifyJuror)
    async def handle(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
        await ctx.conn.execute(f"INSERT INTO {schema}.effects VALUES ($1)", cmd.member_id)
        if cmd.member_id in (fail or {}):
            raise (fail or {})[cmd.member_id]
        if cmd.exam_score < 80:
            raise Rejected("EXAM_FAILED", "below 80")
        return [JurorQualified(member_id=cmd.member_id, exam_score=cmd.exam_score,
                               qualified_on=cmd.qualified_on)]

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()))


async def prepare(pool: asyncpg.Pool, schema: str) -> None:
    await db.migrate(pool, schema, None)
    await pool.execute(f"CREATE TABLE {schema}.effects (member_id text)")


async def outbox(pool: asyncpg.Pool, schema: str) -> list[tuple[str, dict, dict]]:
    rows = await pool.fetch(f"SELECT {outbox_rows.COLUMNS} FROM {schema}.outbox ORDER BY id")
    out = []
    for r in outbox_rows.unpack(rows):
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            value = {"raw": r.value}
        out.append((r.topic, value, r.headers))
    return out


async def effects(pool: asyncpg.Pool, schema: str) -> list[str]:
    return [r["member_id"] for r in await pool.fetch(f"SELECT member_id FROM {schema}.effects")]


async def test_a_batch_of_every_kind_gets_one_outcome_each(pool: asyncpg.Pool,
                                                           schema: str) -> None:
    await prepare(pool, schema)
    good = command_event(qualify("m1"), source="test", id="cmd-1", correlationid="corr-1")
    low = command_event(qualify("m2", 50), source="test", id="cmd-2")
    unknown = orjson.dumps({**orjson.loads(good), "id": "cmd-3", "type": "jury.Nope"})
    invalid = orjson.dumps({**orjson.loads(good), "id": "cmd-4", "data": {"member_id": "x"}})
    crash = command_event(qualify("boom"), source="test", id="cmd-5")
    batch = [record(good, 0), record(good, 1), record(b"\xff not json", 2), record(low, 3),
             record(unknown, 4), record(invalid, 5), record(crash, 6)]
    dispatcher = build(schema, fail={"boom": RuntimeError("bug")})
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, batch)

    out = await outbox(pool, schema)
    events = [(t, v["type"], v.get("data", {}).get("reason_code")) for t, v, _ in out
              if t == "jury.events"]
    assert events == [("jury.events", "jury.JurorQualified", None),
                      ("jury.events", "jury.CommandRejected", "EXAM_FAILED"),
                      ("jury.events", "jury.CommandRejected", "UNKNOWN_TYPE"),
                      ("jury.events", "jury.CommandRejected", "INVALID_DATA"),
                      ("jury.events", "jury.CommandRejected", "PROCESSING_FAILED")]
    dlq = [h for t, _, h in out if t == "jury.dlq"]
    assert [h["dlq-reason-code"] for h in dlq] == ["MALFORMED", "UNKNOWN_TYPE", "INVALID_DATA",
                                                   "PROCESSING_FAILED"]
    assert all(h["dlq-source-topic"] == "jury.commands" and h["dlq-error"] for h in dlq)
    assert [h["dlq-source-offset"] for h in dlq] == ["2", "4", "5", "6"]
    # a rejected or crashing handler's own writes roll back with its savepoint
    assert await effects(pool, schema) == ["m1"]
    first = next(v for t, v, _ in out if v.get("type") == "jury.JurorQualified")
    assert first["correlationid"] == "corr-1" and first["subject"] == "m1"


async def test_the_dlq_keeps_the_original_bytes(pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    raw = b'{"half": "a json'
    async with pool.acquire() as conn, conn.transaction():
        await build(schema).process_in(conn, [record(raw, 9)])
    (topic, value, headers), = await outbox(pool, schema)
    assert topic == "jury.dlq" and value == {"raw": raw}
    assert headers["dlq-reason-code"] == "MALFORMED"


async def test_a_replayed_batch_has_no_second_effect(pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    batch = [record(command_event(qualify(f"m{i}"), source="t", id=f"id-{i}"), i)
             for i in range(5)]
    dispatcher = build(schema)
    for _ in range(3):  # consumer crashed before committing offsets, twice
        async with pool.acquire() as conn, conn.transaction():
            await dispatcher.process_in(conn, batch)
    assert sorted(await effects(pool, schema)) == [f"m{i}" for i in range(5)]
    assert len(await outbox(pool, schema)) == 5
    assert dispatcher.metrics.duplicates._value.get() == 10


async def test_a_failed_transaction_leaves_no_outcome_so_the_retry_is_clean(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    batch = [record(command_event(qualify("m1"), source="t", id="once"), 0)]
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await build(schema).process_in(conn, batch)
            raise RuntimeError("connection lost before commit")
    assert await outbox(pool, schema) == [] and await effects(pool, schema) == []
    async with pool.acquire() as conn, conn.transaction():
        await build(schema).process_in(conn, batch)
    assert [v["type"] for _, v, _ in await outbox(pool, schema)] == ["jury.JurorQualified"]


async def test_other_services_events_are_ignored_and_bad_ones_dead_lettered(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    router = Router("jury")

    @router.event(JurorQualified)  # pretend jury listens to its own event topic
    async def seen(evt: JurorQualified, ctx: HandlerContext) -> Sequence[Event]:
        await ctx.conn.execute(f"INSERT INTO {schema}.effects VALUES ($1)", evt.member_id)
        return []

    dispatcher = Dispatcher(service="jury", schema=schema, router=router,
                            metrics=RuntimeMetrics.create(CollectorRegistry()))
    other = orjson.dumps({"specversion": "1.0", "id": "e1", "source": "x",
                          "type": "jury.VoteCast", "data": {}})
    handled = orjson.dumps({"specversion": "1.0", "id": "e2", "source": "x",
                            "type": "jury.JurorQualified", "data": {
                                "member_id": "j1", "exam_score": 90,
                                "qualified_on": "2020-01-01"}})
    broken = orjson.dumps({"specversion": "1.0", "id": "e3", "source": "x",
                           "type": "jury.JurorQualified", "data": {"member_id": "j1"}})
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, [record(other, 0, "jury.events"),
                                           record(handled, 1, "jury.events"),
                                           record(broken, 2, "jury.events")])
    out = await outbox(pool, schema)
    assert [(t, h.get("dlq-reason-code")) for t, _, h in out] == [("jury.dlq", "INVALID_DATA")]
    assert await effects(pool, schema) == ["j1"]


def build_batch(schema: str, *, explode_on: str | None = None, short: bool = False
                ) -> tuple[Dispatcher, list[int]]:
    """A jury router whose QualifyJuror handler takes runs; records each run's size."""
    router = Router("jury")
    runs: list[int] = []

    @router.command_batch(QualifyJuror)
    async def handle(cmds: Sequence[QualifyJuror], ctx: BatchContext) -> list[object]:
        runs.append(len(cmds))
        await ctx.conn.executemany(f"INSERT INTO {schema}.effects VALUES ($1)",
                                   [(c.member_id,) for c in cmds])
        if explode_on is not None and any(c.member_id == explode_on for c in cmds):
            raise RuntimeError("constraint lost to another writer")
        out: list[object] = [
            Rejected("EXAM_FAILED", "below 80") if c.exam_score < 80 else
            [JurorQualified(member_id=c.member_id, exam_score=c.exam_score,
                            qualified_on=c.qualified_on)] for c in cmds]
        return out[:-1] if short else out

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry())), runs


async def test_a_batch_handler_decides_a_run_at_once_with_one_outcome_each(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    dispatcher, runs = build_batch(schema)
    batch = [record(command_event(qualify(f"m{i}", 90 if i != 2 else 10), source="t",
                                  id=f"b-{i}"), i) for i in range(5)]
    batch.insert(3, record(b"garbage", 99))  # a bad message splits the run in two
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, batch)
    assert runs == [3, 2]
    out = [(v["type"], v.get("data", {}).get("reason_code"), v.get("correlationid"))
           for t, v, _ in await outbox(pool, schema) if t == "jury.events"]
    assert out == [("jury.JurorQualified", None, "b-0"), ("jury.JurorQualified", None, "b-1"),
                   ("jury.CommandRejected", "EXAM_FAILED", "b-2"),
                   ("jury.JurorQualified", None, "b-3"), ("jury.JurorQualified", None, "b-4")]


async def test_a_failing_run_is_retried_one_by_one_so_only_the_culprit_is_refused(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    dispatcher, runs = build_batch(schema, explode_on="m1")
    batch = [record(command_event(qualify(f"m{i}"), source="t", id=f"f-{i}"), i)
             for i in range(3)]
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, batch)
    assert runs == [3, 1, 1, 1]
    out = await outbox(pool, schema)
    events = [(v["type"], v.get("data", {}).get("reason_code")) for t, v, _ in out
              if t == "jury.events"]
    assert events == [("jury.JurorQualified", None), ("jury.CommandRejected", "PROCESSING_FAILED"),
                      ("jury.JurorQualified", None)]
    assert [h["dlq-reason-code"] for t, _, h in out if t == "jury.dlq"] == ["PROCESSING_FAILED"]
    # the failed whole-run attempt and the culprit's own attempt left nothing behind
    assert sorted(await effects(pool, schema)) == ["m0", "m2"]


async def test_a_batch_handler_returning_too_few_outcomes_is_a_failure_not_a_loss(
        pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    dispatcher, _ = build_batch(schema, short=True)
    batch = [record(command_event(qualify(f"m{i}"), source="t", id=f"s-{i}"), i)
             for i in range(2)]
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, batch)
    events = [v["data"].get("reason_code") for t, v, _ in await outbox(pool, schema)
              if t == "jury.events"]
    assert events == ["PROCESSING_FAILED", "PROCESSING_FAILED"]


async def test_oversized_records_are_refused_unread(pool: asyncpg.Pool, schema: str) -> None:
    await prepare(pool, schema)
    d = build(schema)
    d.max_message_bytes = 2_048
    padded = orjson.dumps({**orjson.loads(command_event(qualify("big"), source="test",
                                                        id="cmd-big")),
                           "padding": "x" * 5_000})
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, [record(padded, 0), record(command_event(
            qualify("small"), source="test", id="cmd-small"), 1)])
    out = await outbox(pool, schema)
    assert await effects(pool, schema) == ["small"]
    (dlq,) = [o for o in out if o[0] == "jury.dlq"]
    assert dlq[2]["dlq-reason-code"] == "TOO_LARGE"
    (refused,) = [o[1]["data"] for o in out if o[1].get("type") == "jury.CommandRejected"]
    assert (refused["command_id"], refused["reason_code"]) == ("cmd-big", "TOO_LARGE")


@pytest.mark.parametrize("source,allowed", [
    ("mutualaid/examiners", True), ("mutualaid/examiners-eu/7", True),
    ("mutualaid/claims", False), ("", False)])
async def test_commands_only_from_allowed_sources(pool: asyncpg.Pool, schema: str,
                                                  source: str, allowed: bool) -> None:
    await prepare(pool, schema)
    d = build(schema)
    d.sources = SourcePolicy({"jury.QualifyJuror": ["mutualaid/examiners",
                                                    "mutualaid/examiners-*"]})
    raw = orjson.dumps({**orjson.loads(command_event(qualify("m1"), source="x", id="c-1")),
                        "source": source})
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, [record(raw, 0)])
    out = await outbox(pool, schema)
    if allowed:
        assert await effects(pool, schema) == ["m1"]
        assert [o[1]["type"] for o in out] == ["jury.JurorQualified"]
    else:
        assert await effects(pool, schema) == []
        codes = [o[1]["data"]["reason_code"] for o in out
                 if o[1].get("type") == "jury.CommandRejected"]
        # An empty source is not a CloudEvent at all; any other is refused by the policy.
        assert codes == (["MALFORMED"] if source == "" else ["UNAUTHORIZED_SOURCE"])


def test_source_policy() -> None:
    assert SourcePolicy({}).allows("claims.ReviewClaim", "anyone")
    policy = SourcePolicy({"ReviewClaim": ["mutualaid/reviewers"], "*": ["mutualaid/ops*"]})
    assert policy.allows("claims.ReviewClaim", "mutualaid/reviewers")
    assert not policy.allows("claims.ReviewClaim", "mutualaid/reviewers2")
    assert policy.allows("claims.FileClaim", "mutualaid/ops/console")
    assert not policy.allows("claims.FileClaim", "mutualaid/reviewers")
    assert not SourcePolicy({"ReviewClaim": ["r"]}).allows("claims.FileClaim", "r")


async def test_an_id_reused_for_other_content_goes_to_the_dlq(pool: asyncpg.Pool,
                                                              schema: str) -> None:
    """A replay (same id, same bytes) is dropped silently; the same id with other content is
    a conflict: the first message keeps its one outcome, the other is kept in the DLQ."""
    await prepare(pool, schema)
    d = build(schema)
    first = command_event(qualify("m1"), source="test", id="cmd-1")
    other = command_event(qualify("m2"), source="test", id="cmd-1")
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, [record(first, 0), record(first, 1), record(other, 2)])
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, [record(first, 3), record(other, 4)])
    out = await outbox(pool, schema)
    assert await effects(pool, schema) == ["m1"]
    assert [o[1].get("type") for o in out if o[0] == "jury.events"] == ["jury.JurorQualified"]
    dlq = [o for o in out if o[0] == "jury.dlq"]
    assert [o[2]["dlq-reason-code"] for o in dlq] == ["ID_REUSED", "ID_REUSED"]
    assert [o[2]["dlq-source-offset"] for o in dlq] == ["2", "4"]


async def test_control_characters_in_envelope_ids_cannot_block_the_batch(
        pool: asyncpg.Pool, schema: str) -> None:
    """Postgres refuses NUL in text: such an id must be refused as malformed, not reach the
    inbox and fail (and so replay) the whole batch."""
    await prepare(pool, schema)
    d = build(schema)
    bad = orjson.dumps({**orjson.loads(command_event(qualify("x"), source="t", id="i")),
                        "id": "evil\u0000id"})
    raw_nul = bad.replace(b"\\u0000", b"\x00")
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, [record(bad, 0), record(raw_nul, 1), record(command_event(
            qualify("ok"), source="t", id="fine"), 2)])
    out = await outbox(pool, schema)
    assert await effects(pool, schema) == ["ok"]
    assert sorted(o[2]["dlq-reason-code"] for o in out if o[0] == "jury.dlq") == [
        "MALFORMED", "MALFORMED"]
