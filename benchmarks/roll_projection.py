"""`make bench-billing-roll`: billing's projection of the sharing roll, fed by membership
events over the real broker into the real Postgres, with one billing coordinator process.

The events (``MemberJoined`` for N members, then ``MemberLeft`` for a tenth of them) are
produced to ``membership.events`` before billing starts, so the figure is the consumer's
own: timed from the first roll row written until every join and exit is in the roll.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
sys.path.insert(0, str(REPO / "benchmarks"))

from devstack import cancel_on_sigterm  # noqa: E402
from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402
from devstack.platform import start_platform  # noqa: E402
from report import say, write_section  # noqa: E402

from mutualaid.contracts.envelope import encode_event, now_iso  # noqa: E402
from mutualaid.contracts.membership import MemberJoined, MemberLeft  # noqa: E402
from mutualaid.runtime.dispatch import event_id  # noqa: E402

JOINED = date(2020, 1, 2)


def events(n: int) -> list[tuple[bytes, bytes]]:
    """(key, CloudEvent) of n joins (families of about 1.3) and then n/10 leaves."""
    out: list[tuple[bytes, bytes]] = []
    stamp = now_iso()
    payer = ""
    for i in range(n):
        member = f"rp-{i:08d}"
        payer = member if i % 10 < 7 or not payer else payer
        e = MemberJoined(member_id=member, payer_id=payer, plan="critical_illness",
                         relation="self" if payer == member else "child",
                         masked_name="张*", masked_national_id="310***********1234",
                         birth_date=date(1990, 1, 1), joined_on=JOINED,
                         waiting_period_ends_on=JOINED + timedelta(days=90),
                         rule_version="2020-01-01")
        out.append((member.encode(), encode_event(e, source="bench", id=event_id("rp", i),
                                                  time=stamp, correlationid=None)))
    for i in range(0, n, 10):
        member = f"rp-{i:08d}"
        e = MemberLeft(member_id=member, payer_id=member, plan="critical_illness",
                       left_on=date(2020, 3, 1), last_sharing_date=date(2020, 3, 14))
        out.append((member.encode(), encode_event(e, source="bench", id=event_id("rp-l", i),
                                                  time=stamp, correlationid=None)))
    return out


async def produce(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1024 * 1024)
    await producer.start()
    try:
        for i, (key, value) in enumerate(records):
            await producer.send("membership.events", value, key=key)
            if i and i % 100_000 == 0:
                say(f"  produced {i:,}/{len(records):,}")
        await producer.flush()
    finally:
        await producer.stop()


async def wait_applied(url: str, joins: int, leaves: int, timeout: float) -> float:
    conn = await asyncpg.connect(url)
    try:
        started = None
        deadline = time.monotonic() + timeout
        last = 0.0
        while True:
            n, gone = await conn.fetchrow(
                "SELECT count(*), count(left_on) FROM billing.roll_members") if await \
                conn.fetchval("SELECT to_regclass('billing.roll_members') IS NOT NULL") \
                else (0, 0)
            if n and started is None:
                started = time.perf_counter()
            if n >= joins and gone >= leaves:
                assert started is not None
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"roll: {n:,}/{joins:,} joins, {gone:,}/{leaves:,} leaves")
            if time.monotonic() - last >= 2:
                say(f"  roll: {n:,}/{joins:,} members, {gone:,}/{leaves:,} left")
                last = time.monotonic()
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def main(n: int) -> None:
    cancel_on_sigterm()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-roll-"))
    broker = start_broker(free_port(), run_dir=run_dir)
    url = fresh_database(f"bench_roll_{uuid.uuid4().hex[:8]}")
    try:
        say(f"1/3 building {n:,} joins and {n // 10:,} leaves")
        records = events(n)
        say("2/3 producing them to membership.events")
        await produce(broker.bootstrap, records)
        say("3/3 starting one billing coordinator and timing the projection")
        platform = start_platform(bootstrap=broker.bootstrap, database_url=url,
                                  ports={"billing": free_port()}, services=("billing",),
                                  log_dir=run_dir, extra_env={"ROLE": "coordinator"})
        try:
            seconds = await wait_applied(url, n, -(-n // 10), 600)
        finally:
            platform.stop()
    finally:
        broker.stop()
        drop_database(url)
    total = n + -(-n // 10)
    say(f"  {total:,} membership events into the roll in {seconds:.1f}s: "
        f"{total / seconds:,.0f}/s")
    out = write_section(
        "billing-roll", "Billing roll projection (`make bench-billing-roll`)",
        [(f"MemberJoined x {n:,} then MemberLeft x {n // 10:,}, one billing coordinator, "
          "events already on the topic", f"{total / seconds:,.0f} events/s")],
        "Consumed batches of up to 5,000 events are written with one `INSERT ... SELECT "
        "unnest(...)` (joins) or one `UPDATE ... FROM unnest(...)` (exits) into the roll, "
        "partitioned by payer bucket; the writes are idempotent, so these events skip the "
        "inbox. Target: 50,000 membership events/s per process.")
    say(f"written {out.relative_to(REPO)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=300_000)
    asyncio.run(main(parser.parse_args().members))
