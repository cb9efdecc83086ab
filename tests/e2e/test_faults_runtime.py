"""Faults of the runtime's surroundings, on the real broker and Postgres, with the five
services as processes (issue 7, faults): Postgres connections terminated under load,
consumer-group rebalances under load, and an outbox relay kept from publishing for a while.

Commands stream in while the fault is applied; afterwards every command has exactly one
outcome (counted from the topics, copies of one event counted once) and every service's
tables hold each effect once. ``FAULT_ROUNDS`` scales the number of faults of each test,
``FAULT_SEED`` their seed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest
from devstack.platform import Platform, fetch_health
from devstack.scenario import REGIONS
from faultkit import (
    Database, Processes, fault_rounds, fault_seed, log_count, metric, outcome_problems,
    own_outcome)

from testkit import running_platform

from mutualaid.client import PlatformClient
from mutualaid.contracts import Command
from mutualaid.contracts.claims import FileClaim
from mutualaid.contracts.jury import QualifyJuror
from mutualaid.contracts.membership import JoinPlan, LeavePlan
from mutualaid.identity import synthetic_id
from mutualaid.runtime.outbox import _lock_key

pytestmark = pytest.mark.e2e

SEED = fault_seed(11)
TIMEOUT = 180.0
#: Faults per test: terminations of every backend, replicas started and stopped.
PG_ROUNDS = fault_rounds(12)
REPLICA_ROUNDS = fault_rounds(2)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults-runtime")


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, log_dir: Path) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, log_dir) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/faults") as c:
        yield c


@pytest.fixture(scope="module")
def db(platform: Platform) -> Database:
    return Database(platform.database_url)


@pytest.fixture
def procs(platform: Platform, log_dir: Path) -> Iterator[Processes]:
    p = Processes(platform, log_dir)
    try:
        yield p
    finally:
        p.stop_replicas()


#: Each group of members its own region code, so no two groups share a person.
GROUPS = ("pg", "rb", "rn", "rl")


def payers(tag: str, n: int) -> list[JoinPlan]:
    """n members who each pay for themself: joins that need no other join first (a family
    member's join needs its payer's, which a stream across partitions cannot promise)."""
    rng = random.Random(f"{SEED}/{tag}")
    region = REGIONS[GROUPS.index(tag)]
    out = []
    assert n <= 60_000
    for i in range(n):
        # (birth date, sequence) differ for every i: i // 1000 < 60 days apart, plus a
        # random multiple of 60 days
        birth = date(1962, 1, 1) + timedelta(days=i // 1000 + 60 * rng.randrange(120))
        out.append(JoinPlan(
            member_id=f"{tag}-m{i:06d}", payer_id=f"{tag}-m{i:06d}", plan="critical_illness",
            national_id=synthetic_id(region, birth, i % 1000), name="王" + "明" * (1 + i % 2),
            relation="self", payer_credit_score=700 + i % 200, health_declaration=True,
            joined_on=date(2019, 7, 1) + timedelta(days=rng.randrange(200))))
    return out


async def stream(client: PlatformClient, batches: Sequence[Sequence[Command]],
                 sent: dict[str, str], *, pause: float) -> None:
    """Send the batches one after another, ``pause`` seconds apart: a steady stream."""
    for batch in batches:
        for command in batch:
            sent[await client.send(command)] = command.service()
        await client.flush()
        await asyncio.sleep(pause)


async def all_answered(client: PlatformClient, sent: dict[str, str], what: str) -> None:
    await client.wait_until(lambda: all(own_outcome(client, i, s) for i, s in sent.items()),
                            timeout=TIMEOUT, what=f"an outcome for each of {len(sent)} {what}")
    problems = outcome_problems(client, sent)
    assert not problems, problems[:20]


def outcomes(client: PlatformClient, sent: dict[str, str]) -> Counter[str]:
    """How the commands ended: the success event's type, or the rejection's reason code."""
    out: Counter[str] = Counter()
    for command_id, service in sent.items():
        first = own_outcome(client, command_id, service)[0]
        out[first.data["reason_code"] if first.type.endswith("CommandRejected")
            else first.type] += 1
    return out


def chunks(items: Sequence[Command], size: int) -> list[Sequence[Command]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def everyone_has(db: Database, prefix: str, n: int) -> None:
    """Membership holds the n members once, and every other service's copy of them too."""
    like = prefix + "-%"
    for table in ("membership.members", "claims.coverage", "publicity.members",
                  "jury.members", "billing.roll_members"):
        await db.wait(f"SELECT count(*) FROM {table} WHERE member_id LIKE '{like}'", n,
                      timeout=TIMEOUT, what=f"{n} members in {table}")


# -- Postgres connection loss ------------------------------------------------------------------

@pytest.mark.timeout(300 + 5 * PG_ROUNDS)
async def test_services_ride_out_terminated_database_connections(
        client: PlatformClient, platform: Platform, procs: Processes, db: Database,
        log_dir: Path) -> None:
    """Every backend of the platform's database is terminated (pg_terminate_backend), again
    and again, while joins stream into membership (and on into every service's copy of the
    roll) and claims and jury refuse commands for members they do not know."""
    rounds = PG_ROUNDS
    rng = random.Random(SEED)
    members = payers("pg", 50 * rounds)  # a stream about as long as the rounds
    strangers = [FileClaim(case_id=f"pg-case-{i}", member_id=f"pg-nobody-{i}",
                           illness_code="malignant_tumour", diagnosed_on=date(2020, 5, 1),
                           hospital="h") for i in range(8 * rounds)]
    jurors = [QualifyJuror(member_id=f"pg-nobody-{i}", exam_score=90,
                           qualified_on=date(2020, 6, 1)) for i in range(8 * rounds)]
    mixed = [*members, *strangers, *jurors]
    rng.shuffle(mixed)
    sent: dict[str, str] = {}
    interrupted_before = log_count(log_dir, "outbox relay interrupted")
    terminated = 0

    async def terminate() -> None:
        nonlocal terminated
        admin = await asyncpg.connect(platform.database_url)
        try:
            for _ in range(rounds):
                await asyncio.sleep(rng.uniform(0.2, 1.2))
                terminated += await admin.fetchval(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                    "pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()) t")
        finally:
            await admin.close()

    started = time.monotonic()
    await asyncio.gather(stream(client, chunks(mixed, 20), sent, pause=0.25), terminate())
    await all_answered(client, sent, "commands")
    await everyone_has(db, "pg", len(members))
    procs.check_running()
    await procs.wait_healthy()
    relays = {s: (platform.health(s) or {}).get("checks", {}).get("outbox_relay")
              for s in platform.ports}
    print(f"{rounds} rounds terminated {terminated} backends while {len(sent)} commands "
          f"streamed in; relays interrupted "
          f"{log_count(log_dir, 'outbox relay interrupted') - interrupted_before} times; "
          f"{time.monotonic() - started:.0f}s")
    assert terminated >= rounds  # every round found the services' connections
    assert outcomes(client, sent) == {"membership.MemberJoined": len(members),
                                      "NOT_A_MEMBER": len(strangers),
                                      "NOT_AN_ACTIVE_MEMBER": len(jurors)}
    assert set(relays.values()) == {"leader"}, relays
    # Nothing doubled: one MemberJoined per member, whatever was redelivered.
    joined = {e.data["member_id"] for e in client.of_type("membership.MemberJoined")
              if e.subject.startswith("pg-")}
    assert len(joined) == len(members)
    # The relays listen again: a command after the storm is answered like any other.
    after = {}
    await stream(client, [[QualifyJuror(member_id="pg-nobody-after", exam_score=90,
                                        qualified_on=date(2020, 6, 1))]], after, pause=0)
    await all_answered(client, after, "commands after the storm")


# -- consumer-group rebalances -----------------------------------------------------------------

@pytest.mark.timeout(300 + 30 * REPLICA_ROUNDS)
async def test_replicas_joining_and_leaving_under_load_lose_and_double_nothing(
        client: PlatformClient, platform: Platform, procs: Processes, db: Database,
        log_dir: Path) -> None:
    """Extra replicas of membership and jury (same settings, another HTTP port) join their
    consumer groups and leave them (SIGTERM, or SIGKILL without a goodbye), round after
    round, while joins stream into membership and juror qualifications into jury."""
    rounds = REPLICA_ROUNDS
    rng = random.Random(SEED + 1)
    known = payers("rb", 300)
    sent: dict[str, str] = {}
    await stream(client, chunks(known, 100), sent, pause=0)
    await all_answered(client, sent, "joins")
    await everyone_has(db, "rb", len(known))
    commit_failures_before = sum(p.read_text(errors="replace").count("CommitFailedError")
                                 for p in log_dir.glob("*.log"))
    newcomers = payers("rn", min(1250 * rounds, 60_000))  # a stream as long as the rounds
    qualifications = [QualifyJuror(member_id=m.member_id, exam_score=90,
                                   qualified_on=date(2020, 6, 1)) for m in known]
    done = asyncio.Event()
    changes: list[str] = []

    async def replicas() -> None:
        try:
            for r in range(rounds):
                service = ("membership", "jury")[r % 2]
                replica = procs.start_replica(service)
                await procs.wait_healthy({f"{service} replica": replica.port})
                deadline = time.monotonic() + 60  # the group rebalances, work moves to it
                while "assigned to partitions" not in replica.log.read_text(errors="replace"):
                    assert time.monotonic() < deadline, f"{service} replica got no partition"
                    await asyncio.sleep(0.2)
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                kill = rng.random() < 0.5
                code = await procs.stop_replica(replica, kill=kill)
                changes.append(f"{service} {'SIGKILL' if kill else 'SIGTERM'}")
                assert code in ((-9,) if kill else (0, -15)), (service, code)
                await asyncio.sleep(rng.uniform(0.5, 2.0))
        finally:
            done.set()

    async def load() -> None:
        """A steady stream while replicas come and go; the rest at once when they are done."""
        mixed: list[Command] = [*newcomers, *qualifications]
        rng.shuffle(mixed)
        batches = chunks(mixed, 20)
        while batches and not done.is_set():
            await stream(client, [batches.pop(0)], sent, pause=0.1)
        await stream(client, batches, sent, pause=0)

    started = time.monotonic()
    await asyncio.gather(replicas(), load())
    await all_answered(client, sent, "commands")
    procs.check_running()
    failures = sum(p.read_text(errors="replace").count("CommitFailedError")
                   for p in log_dir.glob("*.log")) - commit_failures_before
    handled = sum(r.log.read_text(errors="replace").count('"event": "Processed"')
                  for r in procs.replicas)
    print(f"{rounds} replica rounds ({dict(Counter(changes))}) while {len(sent)} commands "
          f"streamed in; {handled} batches handled by the replicas; {failures} offset "
          f"commits refused after a rebalance; {time.monotonic() - started:.0f}s")
    assert outcomes(client, sent) == {"membership.MemberJoined": len(known) + len(newcomers),
                                      "jury.JurorQualified": len(qualifications)}
    await everyone_has(db, "rn", len(newcomers))
    assert await db.value("SELECT count(*) FROM jury.jurors WHERE member_id LIKE 'rb-%'") \
        == len(known)


# -- the outbox relay stopped ------------------------------------------------------------------

async def relay_backend(db: Database, schema: str) -> int | None:
    """The backend holding the schema's relay lease (a session advisory lock)."""
    key = _lock_key(schema) & 0xFFFF_FFFF_FFFF_FFFF
    rows = await db.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND classid = $1::bigint::oid AND objid = $2::bigint::oid "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        key >> 32, key & 0xFFFF_FFFF)
    return rows[0]["pid"] if rows else None


async def test_a_stopped_relay_holds_events_back_then_sends_them_in_order(
        client: PlatformClient, platform: Platform, db: Database) -> None:
    """The test takes membership's relay lease (its advisory lock) from under the relay:
    it terminates the relay's connection while waiting for the lock itself, so the relay
    comes back as a standby. Commands are still accepted, the backlog shows in /metrics;
    when the test lets go, the relay resumes and each member's events arrive in order."""
    port = platform.ports["membership"]
    holder = await asyncpg.connect(platform.database_url)
    try:
        pid = await relay_backend(db, "membership")
        assert pid is not None, "no membership relay holds the lease"
        taken = asyncio.create_task(holder.fetchval("SELECT pg_advisory_lock($1)",
                                                    _lock_key("membership")))
        await asyncio.sleep(0.2)  # queued behind the relay's lock
        await db.fetch("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(taken, 30)

        def relay_state() -> object:
            return ((fetch_health(port) or {}).get("checks") or {}).get("outbox_relay")
        await client.wait_until(lambda: relay_state() == "standby", timeout=30,
                                what="membership's relay to stand by")

        members = payers("rl", 40)
        sent: dict[str, str] = {}
        order = [*members, *(LeavePlan(member_id=m.member_id, left_on=date(2020, 6, 1))
                             for m in members)]
        await stream(client, [order], sent, pause=0)
        await db.wait("SELECT count(*) FROM membership.members WHERE member_id LIKE 'rl-%' "
                      "AND status = 'left'", len(members), timeout=TIMEOUT,
                      what="membership to accept the joins and leaves")
        assert not [e for e in client.events if (e.subject or "").startswith("rl-")]
        backlog = (await db.outbox_backlog())["membership"]
        assert backlog >= 2 * len(members)

        async def gauges_show_it() -> tuple[float | None, float | None]:
            return (metric(port, "mutualaid_outbox_pending"),
                    metric(port, "mutualaid_outbox_oldest_age_seconds"))
        deadline = time.monotonic() + 60
        while True:
            pending, age = await gauges_show_it()
            if pending is not None and pending >= backlog and age is not None and age >= 2:
                break
            assert time.monotonic() < deadline, \
                f"the backlog of {backlog} is not in /metrics: pending {pending}, age {age}"
            await asyncio.sleep(0.5)
        assert not [e for e in client.events if (e.subject or "").startswith("rl-")]
    finally:
        await holder.close()  # the relay may take the lease again

    await client.wait_until(lambda: relay_state() == "leader", timeout=60,
                            what="membership's relay to lead again")
    await all_answered(client, sent, "commands held back")
    for m in members:
        kinds = []
        for e in client.events:  # in the order read: per partition, the order written
            if e.subject == m.member_id and e.type.startswith("membership.") and (
                    not kinds or kinds[-1][0] != e.id):
                kinds.append((e.id, e.type))
        assert [k for _, k in kinds] == ["membership.MemberJoined", "membership.MemberLeft"], \
            (m.member_id, kinds)
    await db.wait("SELECT count(*) FROM billing.roll_members WHERE member_id LIKE 'rl-%' "
                  "AND left_on IS NOT NULL", len(members), timeout=TIMEOUT,
                  what="billing to read the held-back joins and leaves")
    deadline = time.monotonic() + 60
    while metric(port, "mutualaid_outbox_pending") != 0:
        assert time.monotonic() < deadline, "the outbox gauge did not return to 0"
        await asyncio.sleep(0.5)
