"""`make bench-membership`: membership throughput end to end, over the real broker into the
real Postgres, with one membership process (its outbox relay included) on this machine.

1. The command path: JoinPlan commands one by one (one Kafka message each), timed from the
   first send until every command's outcome event has been read back from Kafka.
2. The bulk import: ImportMembers commands of 2,000 members, timed from the first send until
   every MemberJoined has been read back from Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
sys.path.insert(0, str(REPO / "benchmarks"))

from devstack import cancel_on_sigterm  # noqa: E402
from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402
from devstack.platform import start_platform  # noqa: E402
from devstack.scenario import MonthConfig, members_for  # noqa: E402
from event_counter import EventCounter  # noqa: E402
from report import cpu_seconds, say, write_section  # noqa: E402

from mutualaid.client import command_event  # noqa: E402
from mutualaid.contracts.membership import IMPORT_BATCH_MAX, ImportMembers, NewMember  # noqa: E402


#: Throughput targets for one membership process.
JOIN_TARGET, IMPORT_TARGET = 2_000, 20_000


def rate_of(row: tuple[str, str]) -> int:
    """The leading figure of a row ("8,715 commands/s" -> 8715)."""
    return int(row[1].split()[0].replace(",", ""))


def met(rate: int, target: int) -> str:
    return "met" if rate >= target else "not met"


async def wait(counter: EventCounter, kinds: tuple[str, ...], target: int, label: str,
               timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while (n := counter.of(*kinds)) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: {n}/{target} after {timeout:.0f}s")
        if time.monotonic() - last >= 2:
            say(f"  {label}: {n:,}/{target:,}")
            last = time.monotonic()
        await asyncio.sleep(0.05)


async def command_path(bootstrap: str, counter: EventCounter, n: int) -> tuple[str, str]:
    payers, _ = members_for(MonthConfig(members=n * 2, tag="cmd", seed=11))
    payloads = [(command_event(p, source="bench"), p.member_id.encode()) for p in payers[:n]]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    before = counter.of("membership.MemberJoined", "membership.CommandRejected")
    say(f"  sending {n:,} JoinPlan commands, one message each")
    start = time.perf_counter()
    for value, key in payloads:
        await producer.send("membership.commands", value, key=key)
    await producer.flush()
    await wait(counter, ("membership.MemberJoined", "membership.CommandRejected"), before + n,
               "JoinPlan outcomes", 600)
    seconds = time.perf_counter() - start
    await producer.stop()
    rejected = counter.of("membership.CommandRejected")
    say(f"  {n:,} JoinPlan in {seconds:.1f}s: {n / seconds:,.0f}/s ({rejected} rejected)")
    return (f"JoinPlan one by one over Kafka, outcome read back ({n:,} commands)",
            f"{n / seconds:,.0f} commands/s")


async def bulk_import(bootstrap: str, counter: EventCounter, n: int, pid: int
                      ) -> list[tuple[str, str]]:
    payers, family = members_for(MonthConfig(members=n, tag="imp", seed=12))
    # Payers first, so every family member's payer was imported by an earlier command.
    members = [NewMember.model_validate(m.model_dump()) for m in [*payers, *family]]
    chunks = [members[i:i + IMPORT_BATCH_MAX] for i in range(0, n, IMPORT_BATCH_MAX)]
    payloads = [command_event(ImportMembers(migration_id="bench", import_id=f"imp-{i:05d}",
                                            members=tuple(c)), source="bench")
                for i, c in enumerate(chunks)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    before = counter.of("membership.MemberJoined")
    say(f"  sending {len(chunks)} ImportMembers commands of up to {IMPORT_BATCH_MAX:,} members")
    cpu_before = cpu_seconds(pid)
    start = time.perf_counter()
    for value in payloads:  # one migration: one key, so its commands stay in order
        await producer.send("membership.commands", value, key=b"bench")
    await producer.flush()
    await wait(counter, ("membership.MembersImported",), len(chunks), "imports answered", 600)
    accepted = sum(i["accepted"] for i in counter.kept_data("membership.MembersImported"))
    await wait(counter, ("membership.MemberJoined",), before + accepted, "MemberJoined out", 600)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(pid)
    await producer.stop()
    cpu_note = ("not measured" if cpu is None or cpu_before is None else
                f"{1e6 * (cpu - cpu_before) / n:.0f} µs ({cpu - cpu_before:.1f} s CPU in "
                f"{seconds:.1f} s)")
    say(f"  membership process CPU per member: {cpu_note}")
    say(f"  {n:,} members decided ({accepted:,} admitted, {n - accepted} refused), events out, "
        f"in {seconds:.1f}s: {n / seconds:,.0f}/s")
    return [(f"ImportMembers, {n:,} members in commands of {IMPORT_BATCH_MAX:,}, every "
             "MemberJoined read back from Kafka", f"{n / seconds:,.0f} members/s"),
            ("the membership process's own CPU time per imported member (user + system)",
             cpu_note)]


async def main(commands: int, imported: int) -> None:
    cancel_on_sigterm()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-membership-"))
    broker = start_broker(free_port(), run_dir=run_dir)
    url = fresh_database(f"bench_membership_{uuid.uuid4().hex[:8]}")
    say(f"broker {broker.bootstrap}, database {url}")
    platform = start_platform(bootstrap=broker.bootstrap, database_url=url,
                              ports={"membership": free_port()}, services=("membership",),
                              log_dir=run_dir)
    counter = EventCounter(broker.bootstrap, "membership.events",
                           keep=("membership.MembersImported",))
    reader = asyncio.create_task(counter.run())
    try:
        say("1/2 command path")
        rows = [await command_path(broker.bootstrap, counter, commands)]
        join_rate = rate_of(rows[-1])
        say("2/2 bulk import")
        rows += await bulk_import(broker.bootstrap, counter, imported,
                                  platform.processes["membership"].pid)
        import_rate = rate_of(rows[1])
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        platform.stop()
        broker.stop()
        drop_database(url)
    out = write_section(
        "membership", "Membership (`make bench-membership`)", rows,
        "One membership process with its outbox relay, tansu, Postgres and the benchmark's "
        "own producer and reader share the machine's two cores. JoinPlan commands are decided "
        "in consumed batches (one transaction, one lookup statement of one index probe per "
        "key, `COPY`); an import takes the same path for up to 2,000 members per command. "
        "Postgres and Python work side by side: the joins are read while the lookup runs, and "
        "the members are copied while their events are encoded. "
        f"Targets: {JOIN_TARGET:,} JoinPlan/s ({met(join_rate, JOIN_TARGET)}) and "
        f"{IMPORT_TARGET:,} imported members/s per process ({met(import_rate, IMPORT_TARGET)}). "
        "Repeated runs vary by up to about 10 % on this shared machine; the process's own CPU "
        "time per member is the steadier figure.")
    say(f"written {out.relative_to(REPO)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.members))
