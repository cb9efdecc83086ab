"""`make bench`: throughput figures of the foundation, written to docs/benchmarks.md.

Each figure is the best of a few repeats, so a busy neighbour lowers nothing but noise.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import orjson
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
sys.path.insert(0, str(REPO / "benchmarks"))

from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402
from devstack.scenario import MonthConfig, members_for  # noqa: E402

from billing.domain.sharing import ApprovedCase, Sharer, share_period  # noqa: E402
from membership.app import DEFINITION as MEMBERSHIP  # noqa: E402
from membership.settings import MembershipSettings  # noqa: E402
from mutualaid.client import command_event  # noqa: E402
from mutualaid.contracts.envelope import (  # noqa: E402
    CloudEvent, decode, encode, encode_event, envelope)
from mutualaid.contracts.membership import MemberJoined  # noqa: E402
from mutualaid.rulebook import load_rulebook  # noqa: E402
from mutualaid.runtime import db, outbox  # noqa: E402
from mutualaid.runtime.kafka import new_producer  # noqa: E402
from mutualaid.runtime.outbox import OutboxRelay, OutgoingRecord  # noqa: E402
from mutualaid.runtime.settings import ServiceSettings  # noqa: E402
from mutualaid.runtime.dispatch import Dispatcher  # noqa: E402
from mutualaid.runtime.metrics import RuntimeMetrics  # noqa: E402
from mutualaid.runtime.resources import Resources  # noqa: E402
from report import say, write_section  # noqa: E402


def best_rate(fn: Callable[[], int], repeats: int = 3) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates)


def bench_encoding() -> list[tuple[str, str]]:
    n = 20_000
    joined = MemberJoined(member_id="m-000001", payer_id="m-000001", plan="critical_illness",
                          relation="self", masked_name="张*明",
                          masked_national_id="310***********1234", birth_date=date(1990, 1, 1),
                          joined_on=date(2020, 1, 2), waiting_period_ends_on=date(2020, 4, 1),
                          rule_version="2020-01-01")
    ce = envelope(joined, source="mutualaid/membership", correlationid="c")
    raw = encode(ce)
    figures = {
        "encode, pydantic model_dump_json (used)": best_rate(
            lambda: [encode(ce) for _ in range(n)] and n),
        "encode, orjson.dumps(model_dump())": best_rate(
            lambda: [orjson.dumps(ce.model_dump(mode="json", exclude_none=True))
                     for _ in range(n)] and n),
        "envelope() + encode, a whole outgoing event": best_rate(
            lambda: [encode(envelope(joined, source="s", correlationid="c"))
                     for _ in range(n)] and n),
        "encode_event, a whole outgoing event (used by the dispatcher)": best_rate(
            lambda: [encode_event(joined, source="s", id="i", time="t", correlationid="c")
                     for _ in range(n)] and n),
        "decode, pydantic model_validate_json (used)": best_rate(
            lambda: [decode(raw) for _ in range(n)] and n),
        "decode, orjson.loads + model_validate": best_rate(
            lambda: [CloudEvent.model_validate(orjson.loads(raw)) for _ in range(n)] and n),
        "decode envelope + data model": best_rate(
            lambda: [MemberJoined.model_validate(decode(raw).data) for _ in range(n)] and n),
    }
    for name, rate in figures.items():
        say(f"  {name}: {rate:,.0f}/s")
    return [(name, f"{rate:,.0f} events/s") for name, rate in figures.items()]


def _record(value: bytes, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic="membership.commands", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=None, value=value, checksum=None,
                          serialized_key_size=0, serialized_value_size=len(value), headers=())


async def bench_dispatch(members: int, batch: int) -> tuple[str, str]:
    """JoinPlan commands through the real membership handlers into Postgres, outbox
    included, in consumer-sized batches: everything a command costs but the broker."""
    url = fresh_database(f"bench_{uuid.uuid4().hex[:8]}")
    try:
        pool = await db.create_pool(url, min_size=1, max_size=2)
        assert pool is not None
        await db.migrate(pool, "membership", MEMBERSHIP.migrations)
        payers, _ = members_for(MonthConfig(members=members * 2, tag="bench"))
        records = [_record(command_event(p, source="bench"), i)
                   for i, p in enumerate(payers[:members])]
        dispatcher = Dispatcher(service="membership", schema="membership",
                                router=MEMBERSHIP.router,
                                metrics=RuntimeMetrics.create(CollectorRegistry()),
                                resources=Resources(load_rulebook(), MembershipSettings()))
        start = time.perf_counter()
        for i in range(0, len(records), batch):
            await dispatcher.process(pool, records[i:i + batch])
            if (i // batch) % 10 == 0:
                say(f"  dispatch: {i + batch:,}/{len(records):,}")
        rate = len(records) / (time.perf_counter() - start)
        outbox = await pool.fetchval("SELECT sum(records) FROM membership.outbox")
        assert outbox == len(records), outbox
        await pool.close()
    finally:
        drop_database(url)
    say(f"  JoinPlan handled with outbox, batches of {batch}: {rate:,.0f}/s")
    return (f"JoinPlan -> MemberJoined via dispatcher, Postgres, outbox ({len(records):,} "
            f"commands, batches of {batch})", f"{rate:,.0f} commands/s")


async def bench_relay(events: int) -> tuple[str, str]:
    """The outbox relay alone: committed outbox rows to acknowledged Kafka records."""
    broker = start_broker(free_port(), run_dir=Path(tempfile.mkdtemp(prefix="bench-relay-")))
    url = fresh_database(f"bench_relay_{uuid.uuid4().hex[:8]}")
    try:
        pool = await db.create_pool(url, min_size=1, max_size=2)
        await db.migrate(pool, "relay", None)
        value = b"x" * 550  # about the size of a MemberJoined CloudEvent
        async with pool.acquire() as conn, conn.transaction():
            await outbox.stage(conn, "relay", [
                OutgoingRecord("relay.events", value, f"member-{i % 10_000}".encode(),
                               {"content-type": "application/cloudevents+json"})
                for i in range(events)])
        settings = ServiceSettings(database_url=url, kafka_bootstrap_servers=broker.bootstrap)
        producer = new_producer(settings, "bench-relay")
        await producer.start()
        relay = OutboxRelay(dsn=url, schema="relay", producer=producer,
                            metrics=RuntimeMetrics.create(CollectorRegistry()),
                            poll_seconds=0.2)
        start = time.perf_counter()
        task = asyncio.create_task(relay.run())
        while left := await pool.fetchval("SELECT COALESCE(sum(records), 0) FROM relay.outbox"):
            say(f"  relay: {events - left:,}/{events:,}")
            await asyncio.sleep(0.5)
        rate = events / (time.perf_counter() - start)
        relay.stop()
        await task
        await producer.stop()
        await pool.close()
    finally:
        drop_database(url)
        broker.stop()
    say(f"  outbox relay: {rate:,.0f} events/s")
    return (f"outbox relay alone, {events:,} committed events to acknowledged Kafka records "
            "(record batches per partition)", f"{rate:,.0f} events/s")


def bench_sharing(members: int) -> tuple[str, str]:
    plan = load_rulebook().version_on(date(2020, 6, 14)).plan("critical_illness")
    sharers = [Sharer(f"m{i:09d}", f"p{i // 2:09d}", date(2019, 1, 1)) for i in range(members)]
    cases = [ApprovedCase(f"c{i}", f"m{i}", 30_000_000) for i in range(50)]
    start = time.perf_counter()
    result = share_period("2020-06-14/critical_illness", date(2020, 6, 14), plan, cases, sharers)
    seconds = time.perf_counter() - start
    assert result.member_debits_fen + result.subsidy_fen == result.total_fen
    say(f"  share_period for {members:,} members: {seconds:.2f}s")
    return (f"share_period, {members:,} members, 50 cases (pure Python, one process)",
            f"{seconds:.2f} s ({members / seconds:,.0f} members/s)")


def main() -> None:
    say("1/4 envelope encoding and decoding")
    rows = bench_encoding()
    say("2/4 command handling into Postgres")
    rows.append(asyncio.run(bench_dispatch(members=20_000, batch=500)))
    say("3/4 outbox relay")
    rows.append(asyncio.run(bench_relay(100_000)))
    say("4/4 sharing arithmetic")
    rows.append(bench_sharing(1_000_000))
    rate = {name: float(figure.split()[0].replace(",", "")) for name, figure in rows[:7]}
    spliced = (rate["encode_event, a whole outgoing event (used by the dispatcher)"]
               / rate["envelope() + encode, a whole outgoing event"])
    out = write_section(
        "foundation", "Foundation (`make bench`)", rows,
        "Rates of repeated runs are the best of three. An envelope model is encoded with "
        "pydantic's `model_dump_json`: it measured faster than orjson over `model_dump()`, "
        "which must build an intermediate dict. The dispatcher goes further: it encodes an "
        "outgoing event straight from its already validated data model (`encode_event`, "
        f"orjson), without building and re-validating an envelope: {spliced:.1f} times as "
        "fast as `envelope()` + `encode` in this run (the dispatcher also shares the "
        "attributes' encoding among the events of one message). Decoding uses "
        "`model_validate_json`, "
        "which parses and validates in one pass; orjson.loads + model_validate is within "
        "noise of it. The relay sends one record batch per partition: on a probe of the relay "
        "alone (40,000 events) one `send()` per record managed 31,000 events/s and record "
        "batches 62,700; the row above is this run's relay over a 100,000-event backlog, "
        "which this benchmark counts every half second to show progress. Since then the "
        "relay places a batch's keys with numpy (murmur2) and reads rows of up to 500 "
        "records each.")
    say(f"written {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
