"""Regressions for what the hostile-input fuzz (tests/e2e/test_hostile_input.py) found, each
through the real dispatcher on a real Postgres:

- an integer beyond 64 bits in a command's data failed the inbox digest, so the batch was
  redelivered for ever and the partition stalled;
- a CloudEvent id of 129 to 256 characters (valid for the envelope) could not be named by a
  ``CommandRejected`` (128 at most), which failed the batch the same way;
- any other failure of the dispatcher itself would stall a partition: such a message is now
  refused alone (``PROCESSING_FAILED``) and the rest of its batch goes on;
- NUL in a name or a hospital failed the handler (Postgres refuses it in text and jsonb);
- a blank person's name failed masking, a handler failure;
- dates before the first rule version (year 1) failed LeavePlan, TransferPlan,
  EndCoverageAtAgeLimit and RunSharingPeriod instead of being refused;
- a dry run's draft rulebook of "{" * 500 overflowed the YAML parser's stack.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import date

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from testkit import service_database

from billing import handlers as billing_handlers
from billing.settings import BillingSettings
from membership import handlers as membership_handlers
from membership.settings import MembershipSettings
from mutualaid.client import command_event
from mutualaid.contracts import Event
from mutualaid.contracts.jury import JurorQualified, QualifyJuror
from mutualaid.contracts.membership import JoinPlan
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime import HandlerContext, Router, db
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.resources import Resources

pytestmark = [pytest.mark.handler, pytest.mark.integration]

_offsets = itertools.count()


def record(value: bytes, topic: str) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=next(_offsets), timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def raw(type_name: str, data: object, id: str, source: str = "tests") -> bytes:
    """A CloudEvent as the fuzz sends it; ``data`` may hold what orjson cannot encode."""
    import json
    return json.dumps({"specversion": "1.0", "id": id, "source": source, "type": type_name,
                       "data": data}, separators=(",", ":")).encode()


async def outcomes(pool: asyncpg.Pool, schema: str) -> list[tuple[str, dict, dict]]:
    rows = await pool.fetch(f"SELECT {outbox.COLUMNS} FROM {schema}.outbox ORDER BY id")
    out = []
    for r in outbox.unpack(rows):
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            value = {"raw": bytes(r.value)}
        out.append((r.topic, value, r.headers))
    return out


def rejections(out: list[tuple[str, dict, dict]]) -> dict[str, str]:
    return {v["data"]["command_id"]: v["data"]["reason_code"] for _, v, _ in out
            if v.get("type", "").endswith("CommandRejected")}


def dead_letters(out: list[tuple[str, dict, dict]]) -> list[str]:
    return [h["dlq-reason-code"] for t, _, h in out if t.endswith(".dlq")]


# -- the dispatcher ---------------------------------------------------------------------------

def jury_dispatcher(schema: str) -> Dispatcher:
    router = Router("jury")

    @router.command(QualifyJuror)
    async def handle(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
        return [JurorQualified(member_id=cmd.member_id, exam_score=cmd.exam_score,
                               qualified_on=cmd.qualified_on)]

    return Dispatcher(service="jury", schema=schema, router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()))


GOOD = {"member_id": "m1", "exam_score": 90, "qualified_on": "2020-01-01"}


async def test_integers_beyond_64_bits_are_refused_not_a_stalled_batch(
        pool: asyncpg.Pool, schema: str) -> None:
    await db.migrate(pool, schema, None)
    batch = [record(raw("jury.QualifyJuror", {**GOOD, "exam_score": 10**30}, "big-1"),
                    "jury.commands"),
             record(raw("jury.Nope", {"n": 2**70}, "big-2"), "jury.commands"),
             record(raw("jury.QualifyJuror", GOOD, "good-1"), "jury.commands")]
    async with pool.acquire() as conn, conn.transaction():
        await jury_dispatcher(schema).process_in(conn, batch)
    out = await outcomes(pool, schema)
    assert rejections(out) == {"big-1": "INVALID_DATA", "big-2": "UNKNOWN_TYPE"}
    assert [v["type"] for _, v, _ in out if v.get("type") == "jury.JurorQualified"] == [
        "jury.JurorQualified"]
    # and a different message re-using the id is still told apart from a replay
    again = [record(raw("jury.Nope", {"n": 2**71}, "big-2"), "jury.commands")]
    async with pool.acquire() as conn, conn.transaction():
        await jury_dispatcher(schema).process_in(conn, again)
    assert dead_letters(await outcomes(pool, schema))[-1] == "ID_REUSED"


async def test_a_rejection_names_any_id_the_envelope_accepts(pool: asyncpg.Pool,
                                                             schema: str) -> None:
    await db.migrate(pool, schema, None)
    long_id = "x" * 256
    batch = [record(raw("jury.QualifyJuror", {"member_id": "m"}, long_id), "jury.commands"),
             record(b'{"id":"' + b"y" * 300 + b'"}', "jury.commands")]
    async with pool.acquire() as conn, conn.transaction():
        await jury_dispatcher(schema).process_in(conn, batch)
    assert rejections(await outcomes(pool, schema)) == {long_id: "INVALID_DATA",
                                                        "y" * 256: "MALFORMED"}


async def test_a_message_the_dispatcher_fails_on_is_refused_alone(
        pool: asyncpg.Pool, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await db.migrate(pool, schema, None)
    dispatcher = jury_dispatcher(schema)
    poison = record(raw("jury.QualifyJuror", GOOD, "poison"), "jury.commands")
    decode = Dispatcher._decode

    def failing(self: Dispatcher, rec: ConsumerRecord) -> object:
        if rec.offset == poison.offset:
            raise RuntimeError("a bug this message finds")
        return decode(self, rec)

    monkeypatch.setattr(Dispatcher, "_decode", failing)
    batch = [record(raw("jury.QualifyJuror", {**GOOD, "member_id": f"m{i}"}, f"ok-{i}"),
                    "jury.commands") for i in range(2)]
    batch.insert(1, poison)
    await dispatcher.process(pool, batch)  # does not raise: raising would redeliver for ever
    out = await outcomes(pool, schema)
    assert [v["data"]["member_id"] for _, v, _ in out if v.get("type") == "jury.JurorQualified"
            ] == ["m0", "m1"]
    assert dead_letters(out) == ["PROCESSING_FAILED"]
    (_, value, headers), = [o for o in out if o[0] == "jury.dlq"]
    assert value == orjson.loads(poison.value)
    assert headers["dlq-source-offset"] == str(poison.offset)
    # a redelivered batch has no second effect: the inbox has the two that went through
    monkeypatch.setattr(Dispatcher, "_decode", decode)
    await dispatcher.process(pool, batch[:1] + batch[2:])
    assert len(await outcomes(pool, schema)) == len(out)


async def test_nul_in_data_is_refused_before_any_handler_stores_it(
        pool: asyncpg.Pool, schema: str) -> None:
    await db.migrate(pool, schema, None)
    batch = [record(raw("jury.QualifyJuror", {**GOOD, "member_id": "a\x00b"}, "nul-1"),
                    "jury.commands"),
             record(raw("jury.QualifyJuror", {**GOOD, "member_id": "a\\u0000b"}, "not-nul"),
                    "jury.commands")]
    async with pool.acquire() as conn, conn.transaction():
        await jury_dispatcher(schema).process_in(conn, batch)
    out = await outcomes(pool, schema)
    assert rejections(out) == {"nul-1": "INVALID_DATA"}  # the escaped backslash is text
    assert [v["data"]["member_id"] for _, v, _ in out if v.get("type") == "jury.JurorQualified"
            ] == ["a\\u0000b"]


# -- membership ---------------------------------------------------------------------------

@pytest.fixture
async def mpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("membership") as sdb:
        yield sdb.pool


def membership(pool_schema: str = "membership") -> Dispatcher:
    return Dispatcher(service="membership", schema=pool_schema,
                      router=membership_handlers.router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()),
                      resources=Resources(load_rulebook(), MembershipSettings()))


def join(member_id: str, name: str) -> JoinPlan:
    return JoinPlan.model_construct(
        member_id=member_id, payer_id=member_id, plan="critical_illness",
        national_id="110105199003070121", name=name, relation="self", payer_credit_score=700,
        health_declaration=True, chronic_conditions=(), joined_on=date(2020, 1, 2))


async def test_dates_before_any_rules_and_blank_or_nul_names_are_refused(
        mpool: asyncpg.Pool) -> None:
    member = command_event(JoinPlan.model_validate(
        join("m-1", "张三明").model_dump()), source="t", id="join")
    batch = [record(member, "membership.commands")] + [
        record(raw(t, d, id), "membership.commands") for t, d, id in (
            ("membership.LeavePlan", {"member_id": "m-1", "left_on": "0897-04-30"}, "leave"),
            ("membership.TransferPlan", {"member_id": "m-1", "to_plan": "elderly_cancer",
                                         "transferred_on": "0001-01-01"}, "transfer"),
            ("membership.EndCoverageAtAgeLimit", {"on": "0059-01-01"}, "age-limit"),
            ("membership.JoinPlan", {**join("m-2", "   ").model_dump(mode="json")}, "blank"),
            ("membership.JoinPlan", {**join("m-3", "张\x00明").model_dump(mode="json")},
             "nul"))]
    async with mpool.acquire() as conn, conn.transaction():
        await membership().process_in(conn, batch)
    out = await outcomes(mpool, "membership")
    assert rejections(out) == {"leave": "INVALID_DATE", "transfer": "INVALID_DATE",
                               "age-limit": "INVALID_DATE", "blank": "INVALID_DATA",
                               "nul": "INVALID_DATA"}
    assert "PROCESSING_FAILED" not in dead_letters(out)


def test_a_persons_name_is_printable_and_not_blank() -> None:
    for name in ("   ", "\t", "张\x00明", "a\x1b[2Jb", "\u2028", "a\x85b"):
        with pytest.raises(ValidationError):
            JoinPlan.model_validate(join("m", name).model_dump())
    for name in ("张三明", " O'Brien ", "Robert'); DROP TABLE members;--", "Zoë"):
        assert JoinPlan.model_validate(join("m", name).model_dump()).name == name


# -- billing --------------------------------------------------------------------------------

@pytest.fixture
async def bpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("billing") as sdb:
        yield sdb.pool


async def test_a_sharing_run_before_any_rules_or_with_a_bottomless_draft_is_refused(
        bpool: asyncpg.Pool) -> None:
    dispatcher = Dispatcher(service="billing", schema="billing",
                            router=billing_handlers.router,
                            metrics=RuntimeMetrics.create(CollectorRegistry()),
                            resources=Resources(load_rulebook(), BillingSettings(shard_tasks=4)))
    batch = [record(raw("billing.RunSharingPeriod", d, id), "billing.commands") for d, id in (
        ({"sharing_date": "0001-01-14"}, "year-1"),
        ({"sharing_date": "2020-06-14", "dry_run": True, "draft_rulebook": "{" * 500},
         "deep-draft"))]
    async with bpool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, batch)
    assert rejections(await outcomes(bpool, "billing")) == {
        "year-1": "INVALID_DATE", "deep-draft": "DRAFT_RULEBOOK_INVALID"}
