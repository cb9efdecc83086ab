"""Billing's coordinator and worker handlers through the real dispatcher on a real Postgres:
a run planned, priced shard by shard and completed; a failed shard failing the period
loudly and a second RunSharingPeriod resuming it with the same figures; payment results
arriving before their shard is stored; the roll projection applied twice.

The worker's Kafka producer is replaced by a recorder (the debit batches it would send);
everything else is the code the service runs."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from testkit import service_database

from billing import handlers, worker
from billing.settings import BillingSettings
from mutualaid.client import command_event
from mutualaid.contracts import Event
from mutualaid.contracts.billing import PaymentSucceeded, RunSharingPeriod
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.envelope import encode_event, now_iso
from mutualaid.contracts.membership import MemberJoined, MemberLeft
from mutualaid.errors import RetryLater
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.resources import Resources

pytestmark = [pytest.mark.handler, pytest.mark.integration]

SHARING = date(2020, 6, 14)
PERIOD = "2020-06-14/critical_illness"
JOINED = date(2020, 1, 2)
_offsets = itertools.count()


class RecordingProducer:
    """Stands in for the worker's Kafka producer: keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes, headers: object = None
                   ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


@pytest.fixture
async def bpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("billing") as sdb:
        yield sdb.pool


def dispatchers(producer: RecordingProducer) -> tuple[Dispatcher, Dispatcher]:
    resources = Resources(load_rulebook(), BillingSettings(shard_tasks=4))
    metrics = RuntimeMetrics.create(CollectorRegistry())
    coordinator = Dispatcher(service="billing", schema="billing", router=handlers.router,
                             metrics=metrics, resources=resources)
    workers = Dispatcher(service="billing", schema="billing", router=worker.router,
                         metrics=metrics, resources=resources)
    workers.producer = producer
    return coordinator, workers


def record(value: bytes, topic: str) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=next(_offsets), timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def evt(event: Event, id: str | None = None) -> ConsumerRecord:
    return record(encode_event(event, source="test", id=id or str(uuid.uuid4()),
                               time=now_iso(), correlationid=None), event.topic())


async def feed(pool: asyncpg.Pool, d: Dispatcher, records: Sequence[ConsumerRecord]
               ) -> list[dict]:
    """One consumed batch; returns what it staged in the outbox (and clears it)."""
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, records)
        rows = await conn.fetch(f"DELETE FROM billing.outbox RETURNING {outbox.COLUMNS}")
    return [orjson.loads(r.value) for r in outbox.unpack(sorted(rows, key=lambda r: r["id"]))]


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == f"billing.{kind}"]


def joined(i: int, payer: int) -> MemberJoined:
    return MemberJoined(member_id=f"hm-{i:04d}", payer_id=f"hm-{payer:04d}",
                        plan="critical_illness", relation="self" if i == payer else "child",
                        masked_name="李*", masked_national_id="310***********1234",
                        birth_date=date(1980, 1, 1), joined_on=JOINED,
                        waiting_period_ends_on=JOINED + timedelta(days=90),
                        rule_version="2020-01-01")


async def seed(pool: asyncpg.Pool, coordinator: Dispatcher, members: int = 400) -> None:
    roll = [evt(joined(i, i - i % 3 if i % 3 < 2 else i)) for i in range(members)]
    await feed(pool, coordinator, roll)
    await feed(pool, coordinator, [evt(CaseApproved(
        case_id="hc-1", member_id="hm-0000", payer_id="hm-0000", plan="critical_illness",
        benefit_fen=30_000_000, rule_version="2020-01-01", diagnosed_on=date(2020, 5, 1),
        approved_on=date(2020, 6, 10)))])


async def run(pool: asyncpg.Pool, coordinator: Dispatcher, workers: Dispatcher
              ) -> tuple[list[dict], list[dict]]:
    """RunSharingPeriod, every shard task priced, every report back: (coordinator's
    events, the shard tasks handed out)."""
    started = await feed(pool, coordinator, [record(command_event(RunSharingPeriod(
        sharing_date=SHARING, plans=("critical_illness",)), source="test"),
        "billing.commands")])
    tasks = of(started, "ShardAssigned")
    out = list(started)
    for task in tasks:
        reports = await feed(pool, workers, [record(orjson.dumps(task), "billing.shard-tasks")])
        for report in reports:
            out += await feed(pool, coordinator, [record(orjson.dumps(report),
                                                         "billing.shard-results")])
    return out, tasks


def debits(producer: RecordingProducer) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, _, value in producer.sent:
        for i in orjson.loads(value)["data"]["instructions"]:
            assert out.setdefault(i["instruction_id"], i["amount_fen"]) == i["amount_fen"]
    return out


async def test_a_run_completes_and_balances(bpool: asyncpg.Pool) -> None:
    producer = RecordingProducer()
    coordinator, workers = dispatchers(producer)
    await seed(bpool, coordinator)
    events, tasks = await run(bpool, coordinator, workers)
    assert len(tasks) == 4 and len(of(events, "SharingRunStarted")) == 1
    (notice,) = of(events, "SharingAnnounced")
    n = notice["data"]
    assert n["members_sharing"] == 400
    assert n["member_debits_fen"] + n["subsidy_fen"] == n["benefits_fen"] + n["fee_fen"]
    assert sum(debits(producer).values()) == n["member_debits_fen"]
    (done,) = of(events, "SharingPeriodCompleted")
    assert done["data"]["plans"][0]["debit_instructions"] == len(debits(producer))
    assert await bpool.fetchval("SELECT count(*) FROM billing.charges") == 400


async def test_a_failed_shard_fails_the_period_and_a_rerun_resumes_it(
        bpool: asyncpg.Pool) -> None:
    clean = RecordingProducer()
    c1, w1 = dispatchers(clean)
    await seed(bpool, c1)
    started = await feed(bpool, c1, [record(command_event(RunSharingPeriod(
        sharing_date=SHARING, plans=("critical_illness",)), source="test"),
        "billing.commands")])
    tasks = of(started, "ShardAssigned")
    # Shard 0 is priced; shard 1 meets a roll that changed under it (a row removed).
    for report in await feed(bpool, w1, [record(orjson.dumps(tasks[0]),
                                                "billing.shard-tasks")]):
        await feed(bpool, c1, [record(orjson.dumps(report), "billing.shard-results")])
    victim = await bpool.fetchrow(
        "SELECT member_id, payer_id, plan, joined_on, bucket, seq FROM billing.roll_members "
        "WHERE bucket >= $1 AND bucket < $2 LIMIT 1", tasks[1]["data"]["bucket_lo"],
        tasks[1]["data"]["bucket_hi"])
    await bpool.execute("DELETE FROM billing.roll_members WHERE member_id=$1",
                        victim["member_id"])
    (report,) = await feed(bpool, w1, [record(orjson.dumps(tasks[1]),
                                              "billing.shard-tasks")])
    assert report["data"]["ok"] is False
    sent_before = len(clean.sent)
    failed = await feed(bpool, c1, [record(orjson.dumps(report), "billing.shard-results")])
    assert [e["type"] for e in failed] == ["billing.SharingRunFailed"]
    assert await bpool.fetchval("SELECT status FROM billing.periods WHERE period_id=$1",
                                PERIOD) == "failed"

    # The operator repairs the roll and runs the date again: the period resumes with the
    # figures it started with; the shard already done is not assigned again.
    await bpool.execute(
        "INSERT INTO billing.roll_members (member_id, payer_id, plan, joined_on, bucket, seq)"
        " VALUES ($1,$2,$3,$4,$5,$6)", *victim.values())
    again = await feed(bpool, c1, [record(command_event(RunSharingPeriod(
        sharing_date=SHARING, plans=("critical_illness",)), source="test"),
        "billing.commands")])
    resumed = of(again, "ShardAssigned")
    assert sorted(t["data"]["task_no"] for t in resumed) == [1, 2, 3]
    for old, new in zip(tasks[1:], resumed, strict=True):
        assert {k: v for k, v in old["data"].items() if k != "run_id"} == \
            {k: v for k, v in new["data"].items() if k != "run_id"}
    events = []
    for task in resumed:
        for report in await feed(bpool, w1, [record(orjson.dumps(task),
                                                    "billing.shard-tasks")]):
            events += await feed(bpool, c1, [record(orjson.dumps(report),
                                                    "billing.shard-results")])
    (notice,) = of(events, "SharingAnnounced")
    assert of(events, "SharingPeriodCompleted")
    assert len(clean.sent) > sent_before
    assert await bpool.fetchval("SELECT count(*) FROM billing.charges") == 400
    assert await bpool.fetchval(
        "SELECT count(DISTINCT member_id) FROM billing.charges") == 400
    resumed_debits = debits(clean)
    assert sum(resumed_debits.values()) == notice["data"]["member_debits_fen"]


async def test_results_wait_for_their_shard_and_unknown_ones_are_dropped(
        bpool: asyncpg.Pool) -> None:
    producer = RecordingProducer()
    coordinator, workers = dispatchers(producer)
    await seed(bpool, coordinator)
    started = await feed(bpool, coordinator, [record(command_event(RunSharingPeriod(
        sharing_date=SHARING, plans=("critical_illness",)), source="test"),
        "billing.commands")])
    # A result for a payer whose shard is not stored yet: the batch must be retried.
    paid = PaymentSucceeded(instruction_id=f"{PERIOD}/debit/hm-0000", amount_fen=1,
                            settled_at=datetime(2020, 6, 15, tzinfo=UTC))
    with pytest.raises(RetryLater):
        await feed(bpool, coordinator, [evt(paid)])
    assert await bpool.fetchval("SELECT count(*) FROM billing.debit_results") == 0
    for task in of(started, "ShardAssigned"):
        for report in await feed(bpool, workers, [record(orjson.dumps(task),
                                                         "billing.shard-tasks")]):
            await feed(bpool, coordinator, [record(orjson.dumps(report),
                                                   "billing.shard-results")])
    amount = debits(producer)[f"{PERIOD}/debit/hm-0000"]
    await feed(bpool, coordinator, [evt(paid.model_copy(update={"amount_fen": amount}))])
    assert await bpool.fetchval("SELECT status FROM billing.debit_results "
                                "WHERE instruction_id=$1", paid.instruction_id) == "paid"
    # unknown party, unknown period, not an instruction id at all: logged and dropped
    for bogus in (f"{PERIOD}/debit/nobody", "2020-06-28/critical_illness/debit/hm-0000",
                  "not-an-instruction"):
        await feed(bpool, coordinator, [evt(paid.model_copy(update={"instruction_id": bogus}))])
    assert await bpool.fetchval("SELECT count(*) FROM billing.debit_results") == 1


async def test_the_roll_projection_applied_twice_changes_nothing(bpool: asyncpg.Pool) -> None:
    coordinator, _ = dispatchers(RecordingProducer())
    joins = [evt(joined(i, i), id=f"join-{i}") for i in range(50)]
    leave = evt(MemberLeft(member_id="hm-0003", payer_id="hm-0003", plan="critical_illness",
                           left_on=date(2020, 3, 1), last_sharing_date=date(2020, 3, 14)),
                id="leave-3")
    later_leave = evt(MemberLeft(member_id="hm-0003", payer_id="hm-0003",
                                 plan="critical_illness", left_on=date(2020, 4, 1),
                                 last_sharing_date=date(2020, 4, 14)), id="leave-3-again")
    await feed(bpool, coordinator, [*joins, leave])
    first = await bpool.fetch("SELECT * FROM billing.roll_members ORDER BY member_id")
    await feed(bpool, coordinator, [*joins, leave, later_leave])
    assert await bpool.fetch("SELECT * FROM billing.roll_members ORDER BY member_id") == first
    assert await bpool.fetchval("SELECT count(*) FROM billing.inbox") == 0
    assert await bpool.fetchval("SELECT left_on FROM billing.roll_members "
                                "WHERE member_id='hm-0003'") == date(2020, 3, 1)
