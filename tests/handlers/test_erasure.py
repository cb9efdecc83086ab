"""Right to erasure through the real dispatchers on real Postgres: membership forgets a
former member's personal data and says so; claims forgets its copies; the ids, plan, dates
and status stay, so the money history is untouched."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from testkit import service_database

from claims.handlers import router as claims_router
from membership.handlers import router as membership_router
from membership.settings import MembershipSettings
from mutualaid.client import command_event
from mutualaid.contracts import Command, Event
from mutualaid.contracts.claims import FileClaim
from mutualaid.contracts.envelope import encode_event, now_iso
from mutualaid.contracts.membership import (
    EraseMember, JoinPlan, LeavePlan, MemberErased, MemberJoined)
from mutualaid.identity import synthetic_id
from mutualaid.rulebook import load_rulebook
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


def cmd(command: Command) -> ConsumerRecord:
    return record(command_event(command, source="test"), f"{command.service()}.commands")


def evt(event: Event) -> ConsumerRecord:
    return record(encode_event(event, source="test", id=str(uuid.uuid4()), time=now_iso(),
                               correlationid=None), event.topic())


async def feed(pool: asyncpg.Pool, d: Dispatcher, schema: str,
               records: Sequence[ConsumerRecord]) -> list[dict]:
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, records)
        rows = await conn.fetch(f"DELETE FROM {schema}.outbox RETURNING {outbox.COLUMNS}")
    return [orjson.loads(r.value) for r in outbox.unpack(sorted(rows, key=lambda r: r["id"]))]


def dispatcher(service: str, router: object, settings: object = None) -> Dispatcher:
    return Dispatcher(service=service, schema=service, router=router,  # type: ignore[arg-type]
                      metrics=RuntimeMetrics.create(CollectorRegistry()),
                      resources=Resources(load_rulebook(), settings))


@pytest.fixture
async def mpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("membership") as sdb:
        yield sdb.pool


@pytest.fixture
async def cpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("claims") as sdb:
        yield sdb.pool


def joiner(member_id: str, seq: int) -> JoinPlan:
    return JoinPlan(member_id=member_id, payer_id=member_id, plan="critical_illness",
                    national_id=synthetic_id("310104", date(1985, 4, 1 + seq), seq),
                    name="欧阳娜娜", relation="self", payer_credit_score=700,
                    health_declaration=True, joined_on=date(2020, 1, 2))


def outcome(events: list[dict]) -> str:
    (e,) = events
    return e["data"]["reason_code"] if e["type"].endswith("CommandRejected") else e["type"]


async def test_a_former_member_is_erased_once_and_an_active_one_not_at_all(
        mpool: asyncpg.Pool) -> None:
    d = dispatcher("membership", membership_router, MembershipSettings())
    for i, m in enumerate(("er-1", "er-2")):
        assert outcome(await feed(mpool, d, "membership", [cmd(joiner(m, i))])) == \
            "membership.MemberJoined"
    erase = EraseMember(member_id="er-1", requested_on=date(2020, 5, 1))
    assert outcome(await feed(mpool, d, "membership", [cmd(erase)])) == "STILL_ACTIVE"
    await feed(mpool, d, "membership", [cmd(LeavePlan(member_id="er-1",
                                                      left_on=date(2020, 4, 1)))])
    (erased,) = await feed(mpool, d, "membership", [cmd(erase)])
    assert erased["type"] == "membership.MemberErased"
    assert erased["data"] == {"member_id": "er-1", "erased_on": "2020-05-01"}
    row = await mpool.fetchrow("SELECT * FROM membership.members WHERE member_id='er-1'")
    assert [row[c] for c in ("name", "national_id_hash", "masked_name", "masked_national_id",
                             "birth_date")] == [None] * 5
    # kept: what the money history and other services' records refer to
    assert (row["member_id"], row["payer_id"], row["plan"], row["status"],
            row["joined_on"], row["status_on"], row["erased_on"]) == (
        "er-1", "er-1", "critical_illness", "left", date(2020, 1, 2), date(2020, 4, 1),
        date(2020, 5, 1))
    assert outcome(await feed(mpool, d, "membership", [cmd(EraseMember(
        member_id="er-1", requested_on=date(2020, 5, 2)))])) == "ALREADY_ERASED"
    assert outcome(await feed(mpool, d, "membership", [cmd(EraseMember(
        member_id="nobody", requested_on=date(2020, 5, 2)))])) == "UNKNOWN_MEMBER"
    # the other member is untouched
    assert await mpool.fetchval("SELECT name FROM membership.members "
                                "WHERE member_id='er-2'") == "欧阳娜娜"


async def test_claims_forgets_its_copy_and_refuses_new_claims(cpool: asyncpg.Pool) -> None:
    d = dispatcher("claims", claims_router)
    await feed(cpool, d, "claims", [evt(joined_event("er-9"))])
    await feed(cpool, d, "claims", [evt(MemberErased(member_id="er-9",
                                                     erased_on=date(2020, 5, 1)))])
    row = await cpool.fetchrow("SELECT * FROM claims.coverage WHERE member_id='er-9'")
    assert (row["masked_name"], row["masked_national_id"], row["birth_date"]) == (
        None, None, None)
    filed = await feed(cpool, d, "claims", [cmd(FileClaim(
        case_id="er-case", member_id="er-9", illness_code="malignant_tumour",
        diagnosed_on=date(2020, 6, 1), hospital="仁济医院"))])
    assert outcome(filed) == "MEMBER_ERASED"


def joined_event(member_id: str) -> MemberJoined:
    return MemberJoined(member_id=member_id, payer_id=member_id, plan="critical_illness",
                        relation="self", masked_name="欧**娜",
                        masked_national_id="310***********1234", birth_date=date(1985, 4, 1),
                        joined_on=date(2020, 1, 2), waiting_period_ends_on=date(2020, 4, 1),
                        rule_version="2020-01-01")
