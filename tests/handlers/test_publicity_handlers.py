"""The publicity service's handlers through the real dispatcher on the real Postgres: rounds,
objections, closing, sharing notices, and the business metrics they count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from itertools import count

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from testkit import service_database
from prometheus_client import CollectorRegistry

from mutualaid.client import command_event
from mutualaid.contracts import Command, Event
from mutualaid.contracts.billing import SharingAnnounced
from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.envelope import encode_event, now_iso
from mutualaid.contracts.membership import MemberJoined, MemberLeft, MemberTransferred
from mutualaid.contracts.publicity import (
    ClosePublicityRound, FileObjection, OpenPublicityRound)
from mutualaid.identity import mask_id, synthetic_id
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics

from publicity.handlers import router
from publicity.metrics import PublicityMetrics
from publicity.resources import PublicityResources
from publicity.settings import PublicitySettings

pytestmark = [pytest.mark.handler, pytest.mark.integration]

RULES = load_rulebook()
ROUND = date(2024, 5, 7)
DEADLINE = date(2024, 5, 10)
TABLES = ("cases", "rounds", "objections", "members", "scheduled_commands",
          "sharing_notices", "outbox", "inbox")


@pytest.fixture(scope="module")
async def ppool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("publicity") as sdb:
        yield sdb.pool


@pytest.fixture
async def service(ppool: asyncpg.Pool) -> Service:
    await ppool.execute("TRUNCATE " + ", ".join(f"publicity.{t}" for t in TABLES))
    return Service(ppool)


class Service:
    """The publicity dispatcher fed one record at a time, as the consumer would."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.metrics = PublicityMetrics().register(CollectorRegistry())
        self.dispatcher = Dispatcher(
            service="publicity", schema="publicity", router=router,
            metrics=RuntimeMetrics.create(CollectorRegistry()),
            resources=PublicityResources(RULES, PublicitySettings(), self.metrics))
        self._offsets = count()

    async def feed(self, *messages: Command | Event, ids: list[str] | None = None) -> None:
        records = []
        for i, m in enumerate(messages):
            offset = next(self._offsets)
            cid = ids[i] if ids else f"msg-{offset}"
            if isinstance(m, Command):
                topic, value = "publicity.commands", command_event(m, source="test", id=cid)
            else:
                topic = m.topic()
                value = encode_event(m, source="test", id=cid, time=now_iso(),
                                     correlationid=cid)
            records.append(ConsumerRecord(
                topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                key=m.subject().encode(), value=value, checksum=None, serialized_key_size=1,
                serialized_value_size=len(value), headers=()))
        async with self.pool.acquire() as conn, conn.transaction():
            await self.dispatcher.process_in(conn, records)

    async def take(self) -> list[dict]:
        """The events written since the last call (and empty the outbox)."""
        rows = await self.pool.fetch(
            f"DELETE FROM publicity.outbox RETURNING {outbox.COLUMNS}")
        return [orjson.loads(r.value) for r in outbox.unpack(sorted(rows, key=lambda r: r["id"]))
                if r.topic == "publicity.events"]

    async def send(self, *messages: Command | Event) -> list[dict]:
        await self.feed(*messages)
        return await self.take()


def types(events: list[dict]) -> list[str]:
    return [e["type"].split(".", 1)[1] for e in events]


def rejection(events: list[dict]) -> str:
    (event,) = events
    assert event["type"] == "publicity.CommandRejected", event
    return event["data"]["reason_code"]


def joined(member_id: str, payer_id: str | None = None, seq: int = 1) -> MemberJoined:
    payer = payer_id or member_id
    return MemberJoined(
        member_id=member_id, payer_id=payer, plan="critical_illness",
        relation="self" if payer == member_id else "spouse", masked_name="王*",
        masked_national_id=mask_id(synthetic_id("310104", date(1985, 1, 1), seq)),
        birth_date=date(1985, 1, 1), joined_on=date(2023, 1, 1),
        waiting_period_ends_on=date(2023, 4, 1), rule_version="2020-01-01")


def ready(case_id: str, member_id: str = "claimant", payer_id: str = "claimant",
          ready_on: date = date(2024, 5, 3)) -> CaseReadyForPublicity:
    return CaseReadyForPublicity(
        case_id=case_id, member_id=member_id, payer_id=payer_id, plan="critical_illness",
        masked_name="赵*", masked_national_id=mask_id(synthetic_id("310104", date(1990, 3, 3), 7)),
        age_band="30-39", illness_code="leukaemia", hospital="Ruijin Hospital",
        benefit_fen=30_000_000, investigation_summary="records verified", ready_on=ready_on)


def objection(n: int, member_id: str, case_id: str = "case-1", reason: str = "doubtful",
              filed_on: date = ROUND + timedelta(days=1)) -> FileObjection:
    return FileObjection(objection_id=f"obj-{n}", case_id=case_id, member_id=member_id,
                         reason=reason, filed_on=filed_on)


def value(counter, *labels: str) -> float:
    return (counter.labels(*labels) if labels else counter)._value.get()


async def test_a_round_publishes_waiting_cases_on_a_publicity_day_only(service: Service) -> None:
    await service.send(ready("case-1"), ready("case-2", ready_on=date(2024, 5, 7)),
                       ready("case-late", ready_on=date(2024, 5, 8)))
    assert rejection(await service.send(OpenPublicityRound(round_date=date(2024, 5, 8)))) == \
        "NOT_A_PUBLICITY_DAY"
    events = await service.send(OpenPublicityRound(round_date=ROUND))
    assert types(events) == ["PublicityRoundOpened", "CasePublished", "CasePublished"]
    assert [e["subject"] for e in events[1:]] == ["case-1", "case-2"]
    for e in events[1:]:
        assert "claimant" not in orjson.dumps(e["data"]).decode()
        assert e["data"]["objection_deadline"] == DEADLINE.isoformat()
    assert rejection(await service.send(OpenPublicityRound(round_date=ROUND))) == \
        "ALREADY_APPLIED"
    # the case ready after the round waits for the next one
    events = await service.send(OpenPublicityRound(round_date=date(2024, 5, 21)))
    assert [e["subject"] for e in events[1:]] == ["case-late"]
    assert value(service.metrics.rounds, "opened") == 2
    assert value(service.metrics.cases_published) == 3


async def test_objections_follow_every_rule_with_its_own_reason(service: Service) -> None:
    await service.send(joined("claimant"), joined("spouse", "claimant", 2), joined("m-a", seq=3),
                       joined("m-b", seq=4), joined("m-gone", seq=5), ready("case-1"))
    await service.send(MemberLeft(member_id="m-gone", payer_id="m-gone",
                                  plan="critical_illness", left_on=date(2024, 5, 1),
                                  last_sharing_date=None))
    assert rejection(await service.send(objection(1, "m-a"))) == "CASE_NOT_PUBLISHED"
    await service.send(OpenPublicityRound(round_date=ROUND))
    cases = [
        (objection(2, "m-a", reason="   "), "REASON_REQUIRED"),
        (objection(3, "m-a", filed_on=DEADLINE + timedelta(days=1)), "WINDOW_CLOSED"),
        (objection(4, "stranger"), "NOT_AN_ACTIVE_MEMBER"),
        (objection(5, "m-gone"), "NOT_AN_ACTIVE_MEMBER"),
        (objection(6, "claimant"), "CLAIMANT_CANNOT_OBJECT"),
        (objection(7, "spouse"), "SAME_PAYER"),
    ]
    for cmd, reason in cases:
        assert rejection(await service.send(cmd)) == reason, cmd
    filed = await service.send(objection(8, "m-a", filed_on=DEADLINE))
    assert types(filed) == ["ObjectionFiled"]
    assert filed[0]["data"]["member_id"] == "m-a" and filed[0]["data"]["reason"] == "doubtful"
    assert rejection(await service.send(objection(9, "m-a"))) == "ALREADY_OBJECTED"
    assert rejection(await service.send(objection(8, "m-b"))) == "OBJECTION_ID_TAKEN"
    assert value(service.metrics.objections, "filed") == 1
    assert value(service.metrics.objections, "NOT_AN_ACTIVE_MEMBER") == 2
    assert value(service.metrics.objections, "CASE_NOT_PUBLISHED") == 1


async def test_a_transfer_keeps_the_member_able_to_object(service: Service) -> None:
    await service.send(joined("m-a"), ready("case-1"), OpenPublicityRound(round_date=ROUND))
    await service.send(MemberLeft(member_id="m-a", payer_id="m-a", plan="critical_illness",
                                  left_on=date(2024, 5, 1), last_sharing_date=None))
    await service.send(MemberTransferred(
        member_id="m-a", payer_id="m-a", from_plan="critical_illness", to_plan="elderly_cancer",
        transferred_on=date(2024, 5, 2), waiting_period_ends_on=date(2024, 5, 2)))
    assert types(await service.send(objection(1, "m-a"))) == ["ObjectionFiled"]


async def test_closing_passes_or_disputes_each_case_not_before_the_deadline(
        service: Service) -> None:
    await service.send(joined("m-a"), joined("m-b", seq=2), ready("case-1"), ready("case-2"),
                       ready("case-3"))
    await service.send(OpenPublicityRound(round_date=ROUND))
    await service.send(objection(1, "m-a", "case-2"), objection(2, "m-b", "case-2"))
    early = ClosePublicityRound(round_date=ROUND, closed_on=DEADLINE - timedelta(days=1))
    assert rejection(await service.send(early)) == "WINDOW_STILL_OPEN"
    assert rejection(await service.send(ClosePublicityRound(round_date=date(2024, 5, 21)))) == \
        "UNKNOWN_ROUND"
    events = await service.send(ClosePublicityRound(round_date=ROUND))
    assert types(events) == ["PublicityPassed", "CaseDisputed", "PublicityPassed",
                             "PublicityRoundClosed"]
    assert events[1]["data"] == {"case_id": "case-2", "round_date": ROUND.isoformat(),
                                 "objections": 2, "disputed_on": DEADLINE.isoformat()}
    assert events[0]["data"]["passed_on"] == DEADLINE.isoformat()
    assert events[-1]["data"] == {"round_date": ROUND.isoformat(), "passed": 2, "disputed": 1}
    assert await service.pool.fetchval(
        "SELECT closed_on FROM publicity.rounds WHERE round_date=$1", ROUND) == DEADLINE
    assert rejection(await service.send(ClosePublicityRound(round_date=ROUND))) == \
        "ALREADY_APPLIED"
    assert rejection(await service.send(objection(3, "m-a", "case-1",
                                                  filed_on=DEADLINE))) == "WINDOW_CLOSED"
    assert value(service.metrics.rounds, "closed") == 1
    assert value(service.metrics.cases_decided, "passed") == 2
    assert value(service.metrics.cases_decided, "disputed") == 1


async def test_a_late_close_dates_its_outcomes_on_its_own_day(service: Service) -> None:
    await service.send(ready("case-1"), OpenPublicityRound(round_date=ROUND))
    on = DEADLINE + timedelta(days=2)
    events = await service.send(ClosePublicityRound(round_date=ROUND, closed_on=on))
    assert events[0]["data"]["passed_on"] == on.isoformat()


def announced(period_id: str = "2024-05-14/critical_illness", dry_run: bool = False
              ) -> SharingAnnounced:
    return SharingAnnounced(
        period_id=period_id, plan="critical_illness", sharing_date=date(2024, 5, 14),
        roll_date=date(2024, 5, 7), rule_version="2020-01-01", cases=1, case_ids=("case-1",),
        benefits_fen=30_000_000, fee_fen=2_400_000, total_fen=32_400_000, members_sharing=7,
        base_share_fen=4_628_571, members_paying_one_fen_more=3,
        member_debits_fen=32_400_000, subsidy_fen=0, dry_run=dry_run)


async def test_sharing_notices_are_published_once_and_dry_runs_not_at_all(
        service: Service) -> None:
    assert await service.send(announced("2024-05-14/elderly_cancer", dry_run=True)) == []
    events = await service.send(announced())
    assert types(events) == ["SharingNoticePublished"]
    notice = events[0]
    assert notice["subject"] == "2024-05-14/critical_illness"
    assert notice["data"]["base_share_fen"] == 4_628_571 and notice["data"]["cases"] == 1
    assert "dry_run" not in notice["data"]
    # billing's same notice delivered again under another id: still one public record
    assert await service.send(announced()) == []
    rows = await service.pool.fetch("SELECT period_id FROM publicity.sharing_notices")
    assert [r["period_id"] for r in rows] == ["2024-05-14/critical_illness"]
    assert value(service.metrics.sharing_notices) == 1


async def test_a_redelivered_command_is_applied_once(service: Service) -> None:
    await service.send(ready("case-1"))
    await service.feed(OpenPublicityRound(round_date=ROUND), ids=["open-7"])
    await service.feed(OpenPublicityRound(round_date=ROUND), ids=["open-7"])
    assert types(await service.take()) == ["PublicityRoundOpened", "CasePublished"]
