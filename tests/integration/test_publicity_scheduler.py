"""The built-in publicity scheduler on the real Postgres (and the real broker where stated):
it writes the calendar commands into the outbox once, replicas and restarts included, catches
up after down-time, and its commands are handled like any other command."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from devstack.broker import free_port, start_broker
from testkit import ServiceDatabase, service_database
from prometheus_client import CollectorRegistry

from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.envelope import decode
from mutualaid.contracts.publicity import ClosePublicityRound, OpenPublicityRound
from mutualaid.identity import mask_id, synthetic_id
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.kafka import new_producer
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.outbox import OutboxRelay, stage

from publicity.app import definition
from publicity.handlers import router
from publicity.metrics import PublicityMetrics
from publicity.resources import PublicityResources
from publicity.scheduler import SOURCE, command_id, command_record, tick
from publicity.settings import PublicitySettings

pytestmark = pytest.mark.integration

RULES = load_rulebook()
ROUND = date(2024, 5, 7)
TABLES = ("cases", "rounds", "objections", "members", "scheduled_commands",
          "sharing_notices", "outbox", "inbox")


@pytest.fixture(scope="module")
async def publicity_db() -> AsyncIterator[ServiceDatabase]:
    async with service_database("publicity", max_size=6) as sdb:
        yield sdb


@pytest.fixture(scope="module")
def publicity_url(publicity_db: ServiceDatabase) -> str:
    return publicity_db.url


@pytest.fixture(scope="module")
def ppool(publicity_db: ServiceDatabase) -> asyncpg.Pool:
    return publicity_db.pool


@pytest.fixture
async def pool(ppool: asyncpg.Pool) -> asyncpg.Pool:
    await ppool.execute("TRUNCATE " + ", ".join(f"publicity.{t}" for t in TABLES))
    return ppool


def runtime(pool: asyncpg.Pool, **settings: object) -> SimpleNamespace:
    """What a background task uses of the ServiceRuntime."""
    metrics = PublicityMetrics().register(CollectorRegistry())
    return SimpleNamespace(
        settings=PublicitySettings(**settings), service_metrics=metrics,
        resources=PublicityResources(RULES, PublicitySettings(), metrics),
        require_pool=lambda: pool)


async def staged(pool: asyncpg.Pool) -> list[outbox.Staged]:
    return outbox.unpack(await pool.fetch(
        f"SELECT {outbox.COLUMNS} FROM publicity.outbox ORDER BY id"))


async def commands(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    return [(decode(r.value).type.split(".")[1], decode(r.value).data["round_date"])
            for r in await staged(pool)]


async def tick_on(pool: asyncpg.Pool, today: date) -> list[str]:
    async with pool.acquire() as conn:
        return [c.TYPE for c in await tick(conn, RULES, today)]


def as_consumed(rows: list[outbox.Staged]) -> list[ConsumerRecord]:
    return [ConsumerRecord(
        topic=r.topic, partition=0, offset=i, timestamp=0, timestamp_type=0, key=r.key,
        value=r.value, checksum=None, serialized_key_size=len(r.key),
        serialized_value_size=len(r.value), headers=()) for i, r in enumerate(rows)]


async def deliver(pool: asyncpg.Pool, records: list[ConsumerRecord] | None = None
                  ) -> list[str]:
    """Hand the staged commands (or ``records``) to publicity's dispatcher, as the consumer
    would after Kafka, and return the types of the events it wrote."""
    if records is None:
        records = as_consumed(await staged(pool))
    await pool.execute("DELETE FROM publicity.outbox")
    dispatcher = Dispatcher(service="publicity", schema="publicity", router=router,
                            metrics=RuntimeMetrics.create(CollectorRegistry()),
                            resources=PublicityResources(RULES, PublicitySettings(),
                                                         PublicityMetrics()))
    async with pool.acquire() as conn, conn.transaction():
        await dispatcher.process_in(conn, records)
    events = [decode(r.value) for r in await staged(pool)]
    await pool.execute("DELETE FROM publicity.outbox")
    return [e.type.split(".")[1] for e in events]


async def add_case(pool: asyncpg.Pool, case_id: str) -> None:
    from publicity.adapters.repository import add_case as store
    async with pool.acquire() as conn:
        await store(conn, CaseReadyForPublicity(
            case_id=case_id, member_id="m-1", payer_id="m-1", plan="critical_illness",
            masked_name="钱*", masked_national_id=mask_id(synthetic_id("310104",
                                                                       date(1990, 1, 1), 3)),
            age_band="30-39", illness_code="leukaemia", hospital="Zhongshan Hospital",
            benefit_fen=30_000_000, investigation_summary="verified", ready_on=date(2024, 5, 2)))


async def test_a_publicity_day_writes_one_open_command_as_a_cloudevent(
        pool: asyncpg.Pool) -> None:
    assert await tick_on(pool, ROUND) == ["publicity.OpenPublicityRound"]
    (row,) = await staged(pool)
    assert row.topic == "publicity.commands" and row.key == b"2024-05-07"
    assert row.headers == {"content-type": "application/cloudevents+json"}
    ce = decode(row.value)
    assert (ce.specversion, ce.source, ce.type, ce.subject, ce.datacontenttype) == (
        "1.0", SOURCE, "publicity.OpenPublicityRound", "2024-05-07", "application/json")
    assert ce.id == command_id(OpenPublicityRound(round_date=ROUND)) == ce.correlationid
    assert ce.data == {"round_date": "2024-05-07"} and ce.time is not None
    # the same id for the same command and date, whoever computes it; another date differs
    assert str(uuid.UUID(ce.id)) == ce.id
    assert command_id(OpenPublicityRound(round_date=date(2024, 5, 21))) != ce.id
    assert command_id(ClosePublicityRound(round_date=ROUND)) != ce.id
    # later ticks the same day, or a restart, send nothing more
    assert await tick_on(pool, ROUND) == []
    assert len(await staged(pool)) == 1


async def test_replicas_ticking_at_once_send_each_command_once(pool: asyncpg.Pool) -> None:
    results = await asyncio.gather(*(tick_on(pool, ROUND) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert await commands(pool) == [("OpenPublicityRound", "2024-05-07")]


async def test_a_command_sent_again_is_dropped_by_the_inbox(pool: asyncpg.Pool) -> None:
    await add_case(pool, "case-1")
    await tick_on(pool, ROUND)
    # the record of sent commands lost (restored backup): the same command, the same id
    await pool.execute("TRUNCATE publicity.scheduled_commands")
    await tick_on(pool, ROUND)
    again = await staged(pool)
    assert len(again) == 2 and decode(again[0].value).id == decode(again[1].value).id
    assert await deliver(pool, as_consumed(again)) == ["PublicityRoundOpened", "CasePublished"]


async def test_a_month_of_daily_ticks_opens_and_closes_both_rounds(pool: asyncpg.Pool) -> None:
    await add_case(pool, "case-1")
    sent: list[tuple[date, list[str]]] = []
    for day in range(1, 32):
        today = date(2024, 5, day)
        types = await tick_on(pool, today)
        if types:
            sent.append((today, types))
            outcome = await deliver(pool)
            assert outcome[0] == "PublicityRoundOpened" or outcome[-1] == "PublicityRoundClosed"
    assert sent == [
        # the round of 21 April is not caught up on the 1st: its objection window is over
        (date(2024, 5, 7), ["publicity.OpenPublicityRound"]),
        (date(2024, 5, 11), ["publicity.ClosePublicityRound"]),
        (date(2024, 5, 21), ["publicity.OpenPublicityRound"]),
        (date(2024, 5, 25), ["publicity.ClosePublicityRound"]),
    ]
    rows = await pool.fetch("SELECT round_date, closed, closed_on FROM publicity.rounds "
                            "ORDER BY round_date")
    assert [tuple(r.values()) for r in rows] == [
        (date(2024, 5, 7), True, date(2024, 5, 10)), (date(2024, 5, 21), True,
                                                      date(2024, 5, 24))]
    assert await pool.fetchval("SELECT round_date FROM publicity.cases") == ROUND


async def test_a_round_opened_by_an_external_cron_is_closed_by_the_scheduler(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await stage(conn, "publicity", [command_record(OpenPublicityRound(round_date=ROUND))])
    assert await deliver(pool) == ["PublicityRoundOpened"]
    assert await tick_on(pool, ROUND) == []
    assert await tick_on(pool, date(2024, 5, 11)) == ["publicity.ClosePublicityRound"]


async def test_on_start_the_scheduler_catches_up_a_missed_publicity_day(
        pool: asyncpg.Pool) -> None:
    await add_case(pool, "case-1")
    rt = runtime(pool, scheduler_interval_seconds=30)
    task = asyncio.create_task(definition(today=lambda: date(2024, 5, 9)).background[0](rt))
    try:
        async with asyncio.timeout(10):
            while len(await staged(pool)) < 1:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # the round of the 7th is opened late, while members can still object until the 10th
    assert await commands(pool) == [("OpenPublicityRound", "2024-05-07")]
    assert await deliver(pool) == ["PublicityRoundOpened", "CasePublished"]
    assert rt.service_metrics.scheduled.labels(
        "publicity.OpenPublicityRound")._value.get() == 1


async def test_the_scheduler_follows_its_clock_from_tick_to_tick(pool: asyncpg.Pool) -> None:
    clock = {"today": date(2024, 5, 6)}
    rt = runtime(pool, scheduler_interval_seconds=0.05)
    task = asyncio.create_task(definition(today=lambda: clock["today"]).background[0](rt))
    try:
        await asyncio.sleep(0.3)
        assert await commands(pool) == []
        clock["today"] = ROUND
        async with asyncio.timeout(10):
            while not await staged(pool):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more ticks on the same day add nothing
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await commands(pool) == [("OpenPublicityRound", "2024-05-07")]


async def test_switched_off_the_scheduler_sends_nothing(pool: asyncpg.Pool) -> None:
    rt = runtime(pool, scheduler_enabled=False, scheduler_interval_seconds=0.05)
    await asyncio.wait_for(definition(today=lambda: ROUND).background[0](rt), 5)
    assert await staged(pool) == []


def test_the_switch_and_interval_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PublicitySettings().scheduler_enabled is True
    assert PublicitySettings().scheduler_interval_seconds == 60
    monkeypatch.setenv("PUBLICITY_SCHEDULER_ENABLED", "false")
    monkeypatch.setenv("PUBLICITY_SCHEDULER_INTERVAL_SECONDS", "5")
    assert PublicitySettings().scheduler_enabled is False
    assert PublicitySettings().scheduler_interval_seconds == 5


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[str]:
    # not the session broker: a real publicity.commands there would reach any publicity
    # service started on it later in the session
    handle = start_broker(free_port(), run_dir=tmp_path)
    yield handle.bootstrap
    handle.stop()


async def test_the_command_reaches_kafka_and_is_handled_from_there(
        pool: asyncpg.Pool, publicity_url: str, private_broker: str) -> None:
    kafka_bootstrap = private_broker
    await add_case(pool, "case-1")
    await tick_on(pool, ROUND)
    settings = PublicitySettings(database_url=publicity_url, kafka_bootstrap_servers=kafka_bootstrap)
    producer = new_producer(settings, "test-publicity-relay")
    await producer.start()
    relay = OutboxRelay(dsn=publicity_url, schema="publicity", producer=producer,
                        metrics=RuntimeMetrics.create(CollectorRegistry()), poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer("publicity.commands", bootstrap_servers=kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    want = command_id(OpenPublicityRound(round_date=ROUND))
    try:
        got: list = []
        async with asyncio.timeout(30):
            while not got:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [r for r in records if decode(r.value).id == want]
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await consumer.stop()
        await producer.stop()
    assert got[0].key == b"2024-05-07"
    assert await deliver(pool, got) == ["PublicityRoundOpened", "CasePublished"]
