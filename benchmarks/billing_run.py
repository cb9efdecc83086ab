"""`make bench-billing`: one sharded sharing run end to end, over the real broker into the real
Postgres, with one billing coordinator and 1, 2, ... billing worker processes.

1. Seed (not timed): N members straight into ``billing.roll_members`` (COPY, about 1.3
   members per payer, all in critical_illness; about 5 % joined before 2018-12-31, so the
   launch window makes the operator pay their share), a completed period 2019-01-14 whose
   charges give about 2 % of members a year-to-date payment near the 18,800 fen annual cap,
   and ``--cases`` approved cases.
2. For each worker count: start the coordinator (``BILLING_ROLE=coordinator``) and the
   workers (``BILLING_ROLE=worker``), send ``RunSharingPeriod(2019-01-28, critical_illness)``
   over Kafka, and time it until ``SharingPeriodCompleted`` has been read and every
   ``PaymentInstructionBatch`` of the run has been read from ``billing.payment-instructions``.
   Then check the money equation (from the completion event and from the charges stored in
   the period's partition), every member on the roll charged exactly once, a sample of the
   debit instructions against the stored charges, and a digest of the partition, which must
   be the same whatever the number of workers. The period is then reset so it can run again.
3. The SQL-only baseline: one ``INSERT ... SELECT`` computing every member's charge inside
   Postgres (equal shares, extra fen, launch window, annual cap), emitting nothing.

The pieces are importable (``tests/e2e/test_billing_bench.py`` runs them small).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from hashlib import md5
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "deploy" / "dev", REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from devstack import cancel_on_sigterm  # noqa: E402
from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402
from devstack.platform import Platform, service_env, wait_ready  # noqa: E402
from report import profiled_service, say, write_section  # noqa: E402

from billing.adapters.runs import ROLL, create_partition, partition_name  # noqa: E402
from mutualaid.client import command_event  # noqa: E402
from mutualaid.contracts import topics  # noqa: E402
from mutualaid.contracts.billing import RunSharingPeriod  # noqa: E402
from mutualaid.runtime import db  # noqa: E402

PLAN = "critical_illness"
SHARING_DATE = date(2019, 1, 28)
ROLL_DATE = date(2019, 1, 21)  # the publicity day before it: members joined before it share
PERIOD_ID = f"{SHARING_DATE.isoformat()}/{PLAN}"
PREVIOUS_DATE = date(2019, 1, 14)
PREVIOUS_ID = f"{PREVIOUS_DATE.isoformat()}/{PLAN}"
#: Rule version 2019-01-01: the annual cap, the launch window, an 8 % fee.
RULE_VERSION = "2019-01-01"
ANNUAL_CAP_FEN = 18_800
WINDOW_JOINED_BEFORE = date(2018, 12, 31)
FEE_BPS = 800
CHUNK = 500_000
RUN_ENDS = (b"billing.SharingPeriodCompleted", b"billing.SharingRunFailed",
            b"billing.CommandRejected")

#: The billing process under cProfile (``--profile``).
PROFILED = profiled_service("billing")

Say = Callable[[str], None]


# -- seeding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    members: int
    payers: int
    window_members: int  # joined before 2018-12-31: the operator pays their share
    near_cap: int  # members with a year-to-date payment from the 2019-01-14 period
    cases: int
    benefits_fen: int
    seconds: float


def _bucket(payer_id: str) -> int:
    """billing.domain.sharing.bucket_of, inlined: it is called millions of times here."""
    return int.from_bytes(md5(payer_id.encode()).digest()[:4], "big") & 1023


def _member_id(i: int) -> str:
    return f"m{i:09d}"


def _roll_chunk(lo: int, hi: int, payer_first: np.ndarray, joined_day: np.ndarray,
                day_text: list[str]) -> bytes:
    """COPY text of members ``lo..hi``: member_id, payer_id, plan, joined_on, bucket, seq.
    A payer's members are consecutive, so each payer's bucket is computed once."""
    lines = []
    last, tail = -1, ""
    for i, first, day in zip(range(lo, hi), payer_first[lo:hi].tolist(),
                             joined_day[lo:hi].tolist(), strict=True):
        if first != last:
            payer = _member_id(first)
            last, tail = first, f"\t{payer}\t{PLAN}\t"
            bucket = f"\t{_bucket(payer)}\t"
        lines.append(f"{_member_id(i)}{tail}{day_text[day]}{bucket}{i + 1}\n")
    return "".join(lines).encode()


async def seed(url: str, members: int, cases: int, *, seed: int = 2019, say: Say = say
               ) -> Seeded:
    """Migrate billing's schema and write the roll, the previous period and the cases."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    # Families: the payer is a member, with 0, 1 or 2 family members (1.3 members a payer).
    sizes = rng.choice(np.array([1, 2, 3]), p=[0.75, 0.2, 0.05], size=members)
    payer_of = np.repeat(np.arange(len(sizes)), sizes)[:members]
    payers = int(payer_of[-1]) + 1 if members else 0
    firsts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    payer_first = firsts[payer_of]  # each member's payer, as the payer's own member index
    # A family joins on one day: about 5 % in 2018 before 2018-12-31 (the launch window),
    # the rest between 2018-12-31 and 2019-01-20, before the roll date 2019-01-21.
    base = date(2018, 1, 1)
    days = (ROLL_DATE - base).days
    window_days = (WINDOW_JOINED_BEFORE - base).days
    payer_day = np.where(rng.random(payers) < 0.05, rng.integers(0, window_days, payers),
                         rng.integers(window_days, days, payers))
    joined_day = payer_day[payer_of]
    day_text = [(base + timedelta(days=d)).isoformat() for d in range(days + 1)]

    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, "billing", files("billing") / "migrations")
        async with pool.acquire() as conn:
            say(f"  seeding {members:,} members ({payers:,} payers) into billing.roll_members")
            last = time.monotonic()
            pending = asyncio.create_task(asyncio.to_thread(
                _roll_chunk, 0, min(CHUNK, members), payer_first, joined_day, day_text))
            for lo in range(0, members, CHUNK):
                text = await pending
                hi = min(lo + CHUNK, members)
                if hi < members:  # the next chunk is built while Postgres takes this one
                    pending = asyncio.create_task(asyncio.to_thread(
                        _roll_chunk, hi, min(hi + CHUNK, members), payer_first, joined_day,
                        day_text))
                await conn.copy_to_table(
                    "roll_members", schema_name="billing", source=io.BytesIO(text),
                    columns=["member_id", "payer_id", "plan", "joined_on", "bucket", "seq"])
                if time.monotonic() - last >= 3 or hi == members:
                    say(f"    {hi:,}/{members:,} members "
                        f"({time.perf_counter() - started:.0f}s)")
                    last = time.monotonic()
            await conn.execute("SELECT setval('billing.roll_seq', $1)", max(members, 1))

            # The previous period of the year: about 2 % of the members (among those who
            # joined before its roll date, after the window) paid 15,000-18,800 fen so far.
            prev_roll = date(2019, 1, 7)
            eligible = np.flatnonzero((joined_day >= window_days)
                                      & (joined_day < (prev_roll - base).days))
            picked = np.sort(rng.choice(eligible, size=min(len(eligible), members // 50),
                                        replace=False))
            paid = rng.integers(15_000, ANNUAL_CAP_FEN + 1, len(picked))
            paid_total = int(paid.sum())
            await conn.execute(
                "INSERT INTO billing.periods (period_id, plan, sharing_date, roll_date, "
                "rule_version, cases, benefits_fen, fee_fen, members_sharing, "
                "member_debits_fen, subsidy_fen, status, dry_run, completed_at) "
                "VALUES ($1,$2,$3,$4,$5,0,$6,0,$7,$6,0,'completed',false,now())",
                PREVIOUS_ID, PLAN, PREVIOUS_DATE, prev_roll, RULE_VERSION, paid_total,
                len(picked))
            await create_partition(conn, PREVIOUS_ID)
            await conn.copy_records_to_table(
                partition_name(PREVIOUS_ID), schema_name="billing",
                columns=["bucket", "member_id", "payer_id", "share_fen", "member_pays_fen",
                         "paid_in_year_fen"],
                records=[(_bucket(_member_id(f)), _member_id(m), _member_id(f), p, p, p)
                         for m, f, p in zip(picked.tolist(), payer_first[picked].tolist(),
                                            paid.tolist(), strict=True)])

            # Approved cases, waiting for this period.
            claimants = rng.integers(0, members, cases)
            benefits = rng.integers(100_000, 300_001, cases) * 100
            approved = rng.integers(0, 24, cases)
            await conn.copy_records_to_table(
                "approved_cases", schema_name="billing",
                columns=["case_id", "plan", "member_id", "payer_id", "benefit_fen",
                         "approved_on"],
                records=[(f"case-{n:06d}", PLAN, _member_id(m), _member_id(f), b,
                          date(2019, 1, 1) + timedelta(days=a))
                         for n, (m, f, b, a) in enumerate(zip(
                             claimants.tolist(), payer_first[claimants].tolist(),
                             benefits.tolist(), approved.tolist(), strict=True))])
            say("  VACUUM ANALYZE (a plan's tables have statistics and a visibility map)")
            for table in ("roll_members", "approved_cases", partition_name(PREVIOUS_ID)):
                await conn.execute(f"VACUUM (ANALYZE) billing.{table}")
    finally:
        await pool.close()
    seconds = time.perf_counter() - started
    window = int((joined_day < window_days).sum())
    say(f"  seeded in {seconds:.0f}s: {members:,} members, {window:,} in the launch window, "
        f"{len(picked):,} near the cap, {cases:,} cases")
    return Seeded(members, payers, window, len(picked), cases, int(benefits.sum()), seconds)


# -- reading the run's events ---------------------------------------------------------


def _attr(value: bytes, name: bytes) -> bytes | None:
    """A string attribute of a compact CloudEvent, found without parsing it."""
    start = value.find(b'"' + name + b'":"')
    if start < 0:
        return None
    start += len(name) + 4
    return value[start:value.find(b'"', start)]


@dataclass
class RunTrace:
    """What the reader saw of one run (one correlation id)."""

    batch_ids: set[bytes] = field(default_factory=set)
    batches: int = 0
    duplicate_batches: int = 0
    instructions: int = 0
    batch_bytes: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    samples: list[bytes] = field(default_factory=list)
    #: Every (instruction_id, amount_fen), when the reader decodes everything (small runs).
    instruction_set: set[tuple[str, int]] | None = None
    ended_at: float | None = None
    last_batch_at: float | None = None

    def event(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["type"] == kind), None)


class RunReader:
    """Reads billing.events and billing.payment-instructions for the runs it is told about.

    Instruction batches are not decoded (millions of instructions): they are attributed to
    a run by their correlation id, de-duplicated by CloudEvent id and their instructions
    counted as occurrences of ``"instruction_id"``; every ``sample_every``-th batch is kept
    whole for checking. ``decode_all`` decodes every instruction (small runs only)."""

    def __init__(self, bootstrap: str, *, sample_every: int = 200,
                 decode_all: bool = False) -> None:
        self.runs: dict[bytes, RunTrace] = {}
        self._sample_every = sample_every
        self._decode_all = decode_all
        self.bytes_read = 0
        self._consumer = AIOKafkaConsumer(
            topics.events("billing"), topics.PAYMENT_INSTRUCTIONS, bootstrap_servers=bootstrap,
            group_id=None, auto_offset_reset="earliest", fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024)

    def expect(self, run_id: str) -> RunTrace:
        trace = self.runs[run_id.encode()] = RunTrace(
            instruction_set=set() if self._decode_all else None)
        return trace

    async def run(self) -> None:
        await self._consumer.start()
        try:
            while True:
                for tp, records in (await self._consumer.getmany(
                        timeout_ms=200, max_records=5_000)).items():
                    now = time.perf_counter()
                    for r in records:
                        self._take(tp.topic, r.value or b"", now)
        finally:
            await self._consumer.stop()

    def _take(self, topic: str, value: bytes, now: float) -> None:
        self.bytes_read += len(value)
        trace = self.runs.get(_attr(value[:1024], b"correlationid") or b"")
        if trace is None:
            return
        if topic == topics.PAYMENT_INSTRUCTIONS:
            event_id = _attr(value[:200], b"id") or b""
            if event_id in trace.batch_ids:
                trace.duplicate_batches += 1
                return
            trace.batch_ids.add(event_id)
            trace.batches += 1
            trace.instructions += value.count(b'"instruction_id":')
            trace.batch_bytes += len(value)
            trace.last_batch_at = now
            if trace.instruction_set is not None:
                trace.instruction_set.update(
                    (i["instruction_id"], i["amount_fen"])
                    for i in orjson.loads(value)["data"]["instructions"])
            if (trace.batches - 1) % self._sample_every == 0:
                trace.samples.append(value)
            return
        kind = _attr(value[:300], b"type") or b""
        if kind.startswith(b"billing.Sharing") or kind == b"billing.CommandRejected":
            trace.events.append(orjson.loads(value))
            if kind in RUN_ENDS:
                trace.ended_at = now

    def done(self, trace: RunTrace) -> bool:
        """The run ended and every instruction it counted has been read."""
        if trace.ended_at is None:
            return False
        completed = trace.event("billing.SharingPeriodCompleted")
        if completed is None:
            return True  # failed or rejected: the caller reports it
        expected = sum(p["debit_instructions"] + p["credit_instructions"]
                       for p in completed["data"]["plans"])
        return trace.instructions >= expected


# -- the billing processes ------------------------------------------------------------


def start_billing(bootstrap: str, url: str, run_dir: Path, workers: int, *,
                  shard_tasks: int | None = None, profile_dir: Path | None = None
                  ) -> Platform:
    """One coordinator and ``workers`` workers, each a process on its own port."""
    names = ["coordinator", *[f"worker-{i}" for i in range(1, workers + 1)]]
    ports = {n: free_port() for n in names}
    platform = Platform(bootstrap, url, ports,
                        {n: run_dir / f"billing-w{workers}-{n}.log" for n in names})
    for name in names:
        extra = {"ROLE": "coordinator" if name == "coordinator" else "worker"}
        if shard_tasks:
            extra["SHARD_TASKS"] = str(shard_tasks)
        command = [sys.executable, "-m", "billing"]
        if profile_dir is not None:
            command = [sys.executable, "-c", PROFILED,
                       str(profile_dir / f"billing-w{workers}-{name}.prof")]
        with platform.logs[name].open("ab") as log:
            platform.processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=service_env("billing", bootstrap=bootstrap, database_url=url,
                                port=ports[name], extra=extra))
    try:
        wait_ready(platform, 90)
    except Exception:
        platform.stop()
        raise
    return platform


def proc_status(pid: int, key: str) -> int | None:
    """A ``kB`` figure of /proc/<pid>/status (VmHWM: peak resident set), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on this machine (read-only scan of /proc): the server
    is shared, so whatever else runs on it is counted too."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores, /proc/stat), to see what else ran."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuClock:
    """CPU seconds of the processes taking part in a run, from start to stop. Postgres is
    counted twice: the backends connected to the benchmark's database (found in
    pg_stat_activity at every sample), and every postgres process of the server."""

    pids: dict[str, int]
    database: str
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    _backends: dict[int, float] = field(default_factory=dict)  # pid -> CPU when first seen
    _backend_last: dict[int, float] = field(default_factory=dict)

    async def sample(self, conn: asyncpg.Connection) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        for pid in await conn.fetchval("SELECT array_agg(pid) FROM pg_stat_activity "
                                       "WHERE datname = $1", self.database) or ():
            now = cpu_seconds(pid)
            # A backend that starts during the run counts from zero.
            self._backends.setdefault(pid, now if not self.start else 0.0)
            self._backend_last[pid] = max(now, self._backend_last.get(pid, 0.0))
        out["postgres"] = sum(self._backend_last[p] - self._backends[p]
                              for p in self._backends)
        out["postgres (all)"] = postgres_cpu_seconds()
        t = os.times()
        out["benchmark"] = t.user + t.system
        out["machine"] = machine_busy_seconds()
        return out

    async def begin(self, conn: asyncpg.Connection) -> None:
        self.start = await self.sample(conn)

    async def end(self, conn: asyncpg.Connection) -> dict[str, float]:
        now = await self.sample(conn)
        self.used = {k: now[k] - self.start.get(k, 0.0) for k in now}
        return self.used


# -- one run --------------------------------------------------------------------------


@dataclass
class RunResult:
    workers: int
    run_id: str
    seconds: float
    seconds_to_completed: float
    members: int
    debit_instructions: int
    credit_instructions: int
    instructions_read: int
    batches: int
    batch_bytes: int
    duplicate_batches: int
    plans: list[dict[str, Any]]
    money_event_ok: bool
    db: dict[str, Any]
    money_db_ok: bool
    one_charge_each: bool
    digest: str
    partition_bytes: int
    worker_peak_rss: list[int]
    coordinator_peak_rss: int
    cpu: dict[str, float]
    tasks_per_worker: dict[str, int]
    shard_seconds: list[float]
    samples_checked: int
    instruction_set: set[tuple[str, int]] | None
    check_seconds: float


def _shard_log(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if '"shard priced"' in line:
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


async def check_partition(conn: asyncpg.Connection, period_id: str = PERIOD_ID
                          ) -> dict[str, Any]:
    """The stored charges of a period against its row and its roll: sums, one row per
    member of the roll, the payers a debit is due from, and a digest of every charge."""
    part = f"billing.{partition_name(period_id)}"
    period = await conn.fetchrow(
        "SELECT members_sharing, total_fen, benefits_fen, fee_fen, member_debits_fen, "
        "subsidy_fen, status, roll_seq, roll_date, plan FROM billing.periods "
        "WHERE period_id=$1", period_id)
    async with conn.transaction():
        await conn.execute("SET LOCAL work_mem = '256MB'")
        sums = await conn.fetchrow(
            f"SELECT count(*) AS rows, COALESCE(sum(share_fen), 0) AS shares, "
            f"COALESCE(sum(member_pays_fen), 0) AS debits, "
            f"COALESCE(sum(share_fen - member_pays_fen), 0) AS subsidy FROM {part}")
        doubles = await conn.fetchval(f"SELECT count(*) FROM (SELECT member_id FROM {part} "
                                      "GROUP BY member_id HAVING count(*) > 1) d")
        roll = await conn.fetchval(f"SELECT count(*) FROM billing.roll_members r WHERE {ROLL}",
                                   period["plan"], period["roll_date"], period["roll_seq"])
        missing = await conn.fetchval(
            f"SELECT count(*) FROM billing.roll_members r WHERE {ROLL} AND NOT EXISTS "
            f"(SELECT 1 FROM {part} c WHERE c.member_id = r.member_id)",
            period["plan"], period["roll_date"], period["roll_seq"])
        payers_debited = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT payer_id FROM {part} GROUP BY payer_id "
            "HAVING sum(member_pays_fen) > 0) p")
        digest = await conn.fetchval(
            "SELECT md5(string_agg(d, ',' ORDER BY bucket)) FROM (SELECT bucket, "
            "md5(string_agg(member_id || ':' || payer_id || ':' || share_fen || ':' || "
            "member_pays_fen || ':' || paid_in_year_fen, ',' ORDER BY member_id)) AS d "
            f"FROM {part} GROUP BY bucket) b")
    size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", part)
    return {"period": dict(period), "rows": sums["rows"], "shares_fen": sums["shares"],
            "member_debits_fen": sums["debits"], "subsidy_fen": sums["subsidy"],
            "doubles": doubles, "roll": roll, "missing": missing,
            "payers_debited": payers_debited, "digest": digest, "bytes": size}


async def check_samples(conn: asyncpg.Connection, samples: list[bytes],
                        period_id: str = PERIOD_ID) -> int:
    """The sampled debit instructions against the stored charges: each amount is the sum
    of its lines, and the lines are the payer's members with what each pays."""
    part = f"billing.{partition_name(period_id)}"
    instructions = [i for s in samples for i in orjson.loads(s)["data"]["instructions"]
                    if i["kind"] == "debit"]
    payers = [i["account_id"] for i in instructions]
    rows = await conn.fetch(f"SELECT payer_id, member_id, member_pays_fen FROM {part} "
                            "WHERE payer_id = ANY($1::text[]) AND member_pays_fen > 0",
                            payers)
    stored: dict[str, dict[str, int]] = {}
    for r in rows:
        stored.setdefault(r["payer_id"], {})[r["member_id"]] = r["member_pays_fen"]
    for i in instructions:
        lines = {x["member_id"]: x["amount_fen"] for x in i["lines"]}
        if i["instruction_id"] != f"{period_id}/debit/{i['account_id']}":
            raise AssertionError(f"unexpected instruction id {i['instruction_id']}")
        if sum(lines.values()) != i["amount_fen"] or lines != stored.get(i["account_id"]):
            raise AssertionError(f"instruction {i['instruction_id']} ({i['amount_fen']} fen, "
                                 f"lines {lines}) differs from the stored charges "
                                 f"{stored.get(i['account_id'])}")
    return len(instructions)


async def run_once(bootstrap: str, url: str, reader: RunReader, run_dir: Path, workers: int,
                   *, shard_tasks: int | None = None, profile_dir: Path | None = None,
                   timeout: float = 1800, say: Say = say) -> RunResult:
    """Start the processes, run the period, check it, stop the processes."""
    say(f"  starting the coordinator and {workers} worker(s)")
    platform = start_billing(bootstrap, url, run_dir, workers, shard_tasks=shard_tasks,
                             profile_dir=profile_dir)
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(3)  # let every worker join the group before the tasks arrive
        pids = {name: p.pid for name, p in platform.processes.items()}
        pid = reader_broker_pid(bootstrap)
        if pid:
            pids["tansu"] = pid
        clock = CpuClock(pids, url.partition("?")[0].rsplit("/", 1)[1])
        # A bare producer: the platform client would decode every instruction it reads.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            run_id = str(uuid.uuid4())
            trace = reader.expect(run_id)
            command = RunSharingPeriod(sharing_date=SHARING_DATE, plans=(PLAN,))
            await clock.begin(conn)
            started = time.perf_counter()
            await producer.send_and_wait(
                topics.commands("billing"), command_event(command, source="bench/billing",
                                                          id=run_id),
                key=command.subject().encode())
            last = time.monotonic()
            prev_cpu = await clock.sample(conn)
            while not reader.done(trace):
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"run not done after {timeout:.0f}s")
                for name, proc in platform.processes.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"billing {name} exited with {proc.returncode}")
                if time.monotonic() - last >= 3:
                    now_cpu = await clock.sample(conn)
                    span = time.monotonic() - last
                    last = time.monotonic()
                    done, tasks = await conn.fetchrow(
                        "SELECT count(*) FILTER (WHERE status='done'), count(*) "
                        "FROM billing.shard_tasks WHERE period_id=$1", PERIOD_ID)
                    busy = ", ".join(f"{k} {100 * (now_cpu[k] - prev_cpu.get(k, 0)) / span:.0f}%"
                                     for k in now_cpu)
                    prev_cpu = now_cpu
                    say(f"    {time.perf_counter() - started:5.0f}s  shards {done}/{tasks}, "
                        f"{trace.batches:,} batches / {trace.instructions:,} instructions "
                        f"read  (CPU: {busy})")
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            cpu = await clock.end(conn)
        finally:
            await producer.stop()
        completed = trace.event("billing.SharingPeriodCompleted")
        if completed is None:
            last_event = trace.events[-1] if trace.events else {}
            raise RuntimeError(f"the run did not complete: {last_event.get('type')} "
                               f"{last_event.get('data')}")
        seconds_to_completed = (trace.ended_at or started) - started
        # Just before the workers stop: their peak resident set.
        worker_rss = [proc_status(p.pid, "VmHWM") or 0 for n, p in platform.processes.items()
                      if n != "coordinator"]
        coordinator_rss = proc_status(platform.processes["coordinator"].pid, "VmHWM") or 0
        if profile_dir is not None:
            for p in platform.processes.values():
                p.send_signal(signal.SIGUSR1)  # write the profile
            await asyncio.sleep(2)
    finally:
        platform.stop()
        await conn.close()
    plans = completed["data"]["plans"]
    money_event_ok = all(p["member_debits_fen"] + p["subsidy_fen"]
                         == p["benefits_fen"] + p["fee_fen"] for p in plans)
    debits = sum(p["debit_instructions"] for p in plans)
    credits = sum(p["credit_instructions"] for p in plans)
    say(f"  done in {seconds:.1f}s (completion read after {seconds_to_completed:.1f}s); "
        f"checking the stored charges")
    check_started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        checked = await check_partition(conn)
        samples = await check_samples(conn, trace.samples)
    finally:
        await conn.close()
    check_seconds = time.perf_counter() - check_started
    period = checked["period"]
    plan = next(p for p in plans if p["period_id"] == PERIOD_ID)
    money_db_ok = (checked["shares_fen"] == period["total_fen"]
                   and checked["member_debits_fen"] == period["member_debits_fen"]
                   == plan["member_debits_fen"]
                   and checked["subsidy_fen"] == period["subsidy_fen"] == plan["subsidy_fen"]
                   and checked["member_debits_fen"] + checked["subsidy_fen"]
                   == period["benefits_fen"] + period["fee_fen"]
                   and checked["payers_debited"] == plan["debit_instructions"])
    one_charge_each = (checked["doubles"] == 0 and checked["missing"] == 0
                       and checked["rows"] == checked["roll"] == period["members_sharing"])
    tasks_per_worker: dict[str, int] = {}
    shard_seconds: list[float] = []
    for name, log in platform.logs.items():
        if name != "coordinator":
            lines = [x for x in _shard_log(log) if x.get("correlationid") == run_id
                     or x.get("period_id") == PERIOD_ID]
            tasks_per_worker[name] = len(lines)
            shard_seconds += [float(x.get("seconds", 0)) for x in lines]
    result = RunResult(
        workers=workers, run_id=run_id, seconds=seconds,
        seconds_to_completed=seconds_to_completed, members=period["members_sharing"],
        debit_instructions=debits, credit_instructions=credits,
        instructions_read=trace.instructions, batches=trace.batches,
        batch_bytes=trace.batch_bytes,
        duplicate_batches=trace.duplicate_batches, plans=plans,
        money_event_ok=money_event_ok, db=checked, money_db_ok=money_db_ok,
        one_charge_each=one_charge_each, digest=checked["digest"],
        partition_bytes=checked["bytes"], worker_peak_rss=worker_rss,
        coordinator_peak_rss=coordinator_rss, cpu=cpu, tasks_per_worker=tasks_per_worker,
        shard_seconds=shard_seconds, samples_checked=samples,
        instruction_set=trace.instruction_set, check_seconds=check_seconds)
    say(f"  {result.members:,} members in {seconds:.1f}s = {result.members / seconds:,.0f}/s; "
        f"{debits:,} debit + {credits:,} credit instructions ({trace.batches:,} batches, "
        f"{trace.duplicate_batches} duplicates); money equation event "
        f"{'ok' if money_event_ok else 'BROKEN'}, database {'ok' if money_db_ok else 'BROKEN'};"
        f" one charge per member {'yes' if one_charge_each else 'NO'}; {samples:,} sampled "
        f"instructions match the charges; shards per worker {tasks_per_worker}; peak RSS "
        f"{', '.join(f'{b / 2**20:,.0f} MiB' for b in worker_rss)}; partition "
        f"{checked['bytes'] / 2**20:,.0f} MiB; checks took {check_seconds:.0f}s")
    return result


def reader_broker_pid(bootstrap: str) -> int | None:
    """The tansu process serving this port, if this machine runs it (for its CPU time)."""
    port = bootstrap.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and b"tansu" in cmd[0].rsplit(b"/", 1)[-1] and any(
                    a.endswith(f":{port}".encode()) for a in cmd):
                return int(entry.name)
    return None


async def reset_period(url: str, period_id: str = PERIOD_ID) -> None:
    """Forget a completed period so that the same run can be timed again (benchmark only:
    a real period is shared once)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            run_id = await conn.fetchval("SELECT run_id FROM billing.periods "
                                         "WHERE period_id=$1", period_id)
            await conn.execute("DELETE FROM billing.shard_tasks WHERE period_id=$1", period_id)
            await conn.execute(f"DROP TABLE IF EXISTS billing.{partition_name(period_id)}")
            await conn.execute("DELETE FROM billing.instructions WHERE period_id=$1",
                               period_id)
            await conn.execute("UPDATE billing.approved_cases SET period_id=NULL "
                               "WHERE period_id=$1", period_id)
            await conn.execute("DELETE FROM billing.periods WHERE period_id=$1", period_id)
            if run_id is not None:
                await conn.execute("DELETE FROM billing.runs WHERE run_id=$1", run_id)
    finally:
        await conn.close()


async def roll_read_probe(url: str, shard_tasks: int | None) -> dict[str, Any]:
    """EXPLAIN ANALYZE of a worker's roll read for one shard in the middle of the roll (the
    query of billing.adapters.runs.read_roll, restated): how many of the roll's pages one
    shard's read touches."""
    tasks = shard_tasks or 64
    width = -(-1024 // tasks)
    lo = (tasks // 2) * width
    conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_custom_plan"})
    try:
        roll_seq = await conn.fetchval("SELECT last_value FROM billing.roll_seq")
        plan = orjson.loads(await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
            "SELECT r.member_id, r.payer_id, r.bucket, r.joined_on, "
            "COALESCE(c.paid_in_year_fen, 0) FROM billing.roll_members r "
            "LEFT JOIN billing.charges c ON c.period_id = $6 AND c.bucket >= $4 "
            "AND c.bucket < $5 AND c.member_id = r.member_id "
            f"WHERE r.bucket >= $4 AND r.bucket < $5 AND {ROLL} "
            "ORDER BY r.bucket, r.member_id", PLAN, ROLL_DATE, roll_seq, lo, lo + width,
            PREVIOUS_ID))[0]
        # The roll is partitioned by bucket: its pages are its partitions' pages.
        pages = await conn.fetchval(
            "SELECT COALESCE(sum(c.relpages), 0) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'billing.roll_members'::regclass")
        rows = await conn.fetchval("SELECT count(*) FROM billing.roll_members")
    finally:
        await conn.close()
    top = plan["Plan"]
    return {"buckets": (lo, lo + width), "rows": top["Actual Rows"], "roll_rows": rows,
            "pages_touched": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
            "roll_pages": pages, "ms": plan["Execution Time"],
            "estimated_rows": top["Plan Rows"]}


# -- the SQL-only baseline ------------------------------------------------------------


BASELINE_SQL = f"""
INSERT INTO billing.bench_sql_baseline (period_id, bucket, member_id, payer_id, share_fen,
                                        member_pays_fen, paid_in_year_fen)
SELECT $4, s.bucket, s.member_id, s.payer_id, s.share, x.pays,
       COALESCE(p.paid_in_year_fen, 0) + x.pays
FROM (
    SELECT r.bucket, r.member_id, r.payer_id, r.joined_on,
           t.total / count(*) OVER ()
           + CASE WHEN row_number() OVER (ORDER BY md5($4 || r.member_id), r.member_id)
                       <= t.total % count(*) OVER () THEN 1 ELSE 0 END AS share
    FROM billing.roll_members r,
         (SELECT b + (b * {FEE_BPS} + 5000) / 10000 AS total
          FROM (SELECT COALESCE(sum(benefit_fen), 0)::bigint AS b FROM billing.approved_cases
                WHERE plan = $1 AND period_id IS NULL AND approved_on <= $5) c) t
    WHERE {ROLL}
) s
LEFT JOIN billing.{partition_name(PREVIOUS_ID)} p ON p.member_id = s.member_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.joined_on < $6 THEN 0
                ELSE least(s.share, greatest(0, $7 - COALESCE(p.paid_in_year_fen, 0)))
           END AS pays) x
"""


@dataclass
class Baseline:
    seconds: float
    rows: int
    money_ok: bool
    #: From the statement's EXPLAIN (ANALYZE, BUFFERS): shared pages dirtied and written,
    #: temporary pages written (sort and hash spills).
    dirtied_pages: int = 0
    written_pages: int = 0
    temp_pages: int = 0


async def sql_baseline(url: str, say: Say = say) -> Baseline:
    """Every member's charge computed by one INSERT ... SELECT into a table shaped and
    indexed like a period's partition; nothing emitted."""
    conn = await asyncpg.connect(url)
    try:
        roll_seq = await conn.fetchval("SELECT last_value FROM billing.roll_seq")
        await conn.execute(
            "DROP TABLE IF EXISTS billing.bench_sql_baseline;"
            "CREATE TABLE billing.bench_sql_baseline (LIKE billing.charges);"
            "CREATE INDEX ON billing.bench_sql_baseline USING brin (bucket) "
            "WITH (pages_per_range = 16);"
            "CREATE INDEX ON billing.bench_sql_baseline (payer_id);")
        say("  INSERT ... SELECT of every member's charge")
        started = time.perf_counter()
        # Run under EXPLAIN ANALYZE without per-node timing (next to no overhead): the
        # statement's buffer figures say where its time goes.
        plan = orjson.loads(await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + BASELINE_SQL, PLAN,
            ROLL_DATE, roll_seq, PERIOD_ID, SHARING_DATE, WINDOW_JOINED_BEFORE,
            ANNUAL_CAP_FEN, timeout=3600))[0]["Plan"]
        seconds = time.perf_counter() - started
        rows = await conn.fetchval("SELECT count(*) FROM billing.bench_sql_baseline")
        benefits = await conn.fetchval(
            "SELECT COALESCE(sum(benefit_fen), 0) FROM billing.approved_cases WHERE plan=$1 "
            "AND period_id IS NULL AND approved_on <= $2", PLAN, SHARING_DATE)
        total = benefits + (benefits * FEE_BPS + 5000) // 10000
        shares, debits, subsidy = await conn.fetchrow(
            "SELECT sum(share_fen), sum(member_pays_fen), sum(share_fen - member_pays_fen) "
            "FROM billing.bench_sql_baseline")
        money_ok = rows == 0 or (shares == total and debits + subsidy == total)
        await conn.execute("DROP TABLE billing.bench_sql_baseline")
    finally:
        await conn.close()
    base = Baseline(seconds, rows, money_ok, plan.get("Shared Dirtied Blocks", 0),
                    plan.get("Shared Written Blocks", 0), plan.get("Temp Written Blocks", 0))
    say(f"  SQL-only baseline: {rows:,} charges in {seconds:.1f}s "
        f"({rows / seconds:,.0f} members/s), money equation {'ok' if money_ok else 'BROKEN'}; "
        f"{base.dirtied_pages:,} shared pages dirtied, {base.written_pages:,} written, "
        f"{base.temp_pages:,} temporary pages written")
    return base


# -- the whole benchmark --------------------------------------------------------------


@dataclass
class BenchResult:
    seeded: Seeded
    runs: list[RunResult]
    baseline: Baseline | None
    probe: dict[str, Any] | None = None

    @property
    def identical(self) -> bool:
        first = self.runs[0]
        return all(
            r.digest == first.digest
            and r.plans == first.plans
            and r.instructions_read == first.instructions_read
            and (r.instruction_set is None or r.instruction_set == first.instruction_set)
            for r in self.runs[1:])


async def bench(members: int, cases: int, workers: list[int], *, shard_tasks: int | None = None,
                baseline: bool = True, decode_all: bool = False,
                profile_dir: Path | None = None, run_dir: Path | None = None,
                say: Say = say) -> BenchResult:
    """Seed, run the period once per worker count, run the baseline; everything it starts
    (broker, database, processes) is stopped and dropped at the end."""
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="bench-billing-"))
    broker = start_broker(free_port(), run_dir=run_dir)
    url = fresh_database(f"bench_billing_{uuid.uuid4().hex[:8]}")
    say(f"broker {broker.bootstrap}, database {url}, logs {run_dir}")
    reader_task: asyncio.Task[None] | None = None
    try:
        say(f"1/3 seed {members:,} members and {cases:,} cases")
        seeded = await seed(url, members, cases, say=say)
        reader = RunReader(broker.bootstrap, decode_all=decode_all,
                           sample_every=max(1, members // 13_000))
        runs = []
        for n, w in enumerate(workers):
            say(f"2/3 sharing run with {w} worker(s)")
            if n:
                await reset_period(url)
            result_task = asyncio.create_task(run_once(
                broker.bootstrap, url, reader, run_dir, w, shard_tasks=shard_tasks,
                profile_dir=profile_dir, say=say))
            if reader_task is None:
                # The topics exist once the first coordinator has started.
                while not _ready_for_reader(run_dir, w) and not result_task.done():
                    await asyncio.sleep(0.2)
                reader_task = asyncio.create_task(reader.run())
            runs.append(await result_task)
        probe = await roll_read_probe(url, shard_tasks)
        say(f"  one shard's roll read: {probe['rows']:,} rows in {probe['ms'] / 1000:.2f}s, "
            f"{probe['pages_touched']:,} pages touched of the roll's {probe['roll_pages']:,}")
        base = None
        if baseline:
            await reset_period(url)
            say("3/3 SQL-only baseline")
            base = await sql_baseline(url, say=say)
        return BenchResult(seeded, runs, base, probe)
    finally:
        if reader_task is not None:
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)
        broker.stop()
        drop_database(url)


def _ready_for_reader(run_dir: Path, workers: int) -> bool:
    """The coordinator logs "service started" after it created the topics."""
    log = run_dir / f"billing-w{workers}-coordinator.log"
    return log.exists() and b"service started" in log.read_bytes()


# -- the report -----------------------------------------------------------------------


def _mib(b: int) -> str:
    return f"{b / 2**20:,.0f} MiB"


#: CPU figures that are not one of the run's own processes.
_NOT_OURS = ("postgres (all)", "machine")


def own_cpu(r: RunResult) -> float:
    """CPU seconds of the run's own processes: billing, tansu, our database's backends and
    the benchmark (its producer and reader)."""
    return sum(v for k, v in r.cpu.items() if k not in _NOT_OURS)


def other_cpu(r: RunResult) -> float:
    """CPU seconds the machine spent outside the run's processes and outside Postgres:
    other work on a shared machine."""
    ours = sum(v for k, v in r.cpu.items() if k not in _NOT_OURS and k != "postgres")
    return max(0.0, r.cpu.get("machine", 0.0) - ours - r.cpu.get("postgres (all)", 0.0))


def report_rows(res: BenchResult) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    s = res.seeded
    rows.append(("roll", f"{s.members:,} members, {s.payers:,} payers; {s.window_members:,} "
                 f"in the launch window (operator pays); {s.near_cap:,} near the annual cap; "
                 f"{s.cases:,} cases; {sum(res.runs[0].tasks_per_worker.values())} shard "
                 "tasks; sharing date 2019-01-28, rule version 2019-01-01"))
    for r in res.runs:
        w = f"{r.workers} worker{'s' if r.workers > 1 else ''}"
        shard = (f"; seconds per shard median {statistics.median(r.shard_seconds):.2f}, max "
                 f"{max(r.shard_seconds):.2f}" if r.shard_seconds else "")
        procs = ", ".join(f"{k} {v:.0f} ({100 * v / r.seconds:.0f}%)"
                          for k, v in r.cpu.items() if k not in _NOT_OURS)
        rows += [
            (f"{w}: RunSharingPeriod sent until completion and every instruction read",
             f"{r.seconds:.1f} s ({r.members / r.seconds:,.0f} members/s); completion event "
             f"after {r.seconds_to_completed:.1f} s"),
            (f"{w}: instructions emitted",
             f"{r.debit_instructions:,} debits + {r.credit_instructions:,} credits in "
             f"{r.batches:,} batches, {_mib(r.batch_bytes)} of CloudEvents "
             f"({r.duplicate_batches} duplicate batches read)"),
            (f"{w}: shards priced per worker",
             ", ".join(f"{k} {v}" for k, v in r.tasks_per_worker.items()) + shard),
            (f"{w}: peak RSS per worker (VmHWM)",
             ", ".join(_mib(b) for b in r.worker_peak_rss)
             + f"; coordinator {_mib(r.coordinator_peak_rss)}"),
            (f"{w}: CPU seconds during the run (share of the wall time)",
             f"{procs}; in all {own_cpu(r):.0f} s = {1e6 * own_cpu(r) / r.members:.1f} µs "
             f"per member. Machine: {r.cpu.get('machine', 0):.0f} s busy of "
             f"{r.seconds * (os.cpu_count() or 1):.0f} s on {os.cpu_count()} cores, of which "
             f"{other_cpu(r):.0f} s other work and every postgres process "
             f"{r.cpu.get('postgres (all)', 0):.0f} s"),
            (f"{w}: period's charges partition (pg_total_relation_size)",
             _mib(r.partition_bytes)),
            (f"{w}: money equation holds",
             f"{'yes' if r.money_event_ok and r.money_db_ok else 'NO'}: completion event "
             "debits + subsidy = benefits + fee; the stored charges add up to the period's "
             "total, debits and subsidy, and their paying payers to the debit instructions; "
             f"{r.samples_checked:,} sampled instructions = their stored charges"),
            (f"{w}: every member on the roll charged exactly once",
             f"{'yes' if r.one_charge_each else 'NO'} ({r.db['rows']:,} rows, "
             f"{r.db['doubles']} doubles, {r.db['missing']} missing)"),
        ]
    if len(res.runs) > 1:
        rows.append(("identical across worker counts",
                     f"{'yes' if res.identical else 'NO'} (md5 of every charge row, the "
                     f"completion totals and the instruction count)"))
    if res.probe is not None:
        p = res.probe
        rows.append((f"one shard's roll read (EXPLAIN ANALYZE, buckets {p['buckets'][0]}-"
                     f"{p['buckets'][1] - 1})",
                     f"{p['rows']:,} rows ({p['estimated_rows']:,} estimated) in "
                     f"{p['ms'] / 1000:.2f} s, {p['pages_touched']:,} pages touched; the roll "
                     f"has {p['roll_pages']:,} heap pages"))
    if res.baseline is not None:
        b = res.baseline
        rows.append(("SQL-only baseline: one INSERT ... SELECT of every charge",
                     f"{b.seconds:.1f} s ({b.rows / b.seconds:,.0f} members/s); "
                     f"{b.dirtied_pages * 8 / 2**20:,.1f} GiB of shared pages dirtied, "
                     f"{b.written_pages * 8 / 2**20:,.1f} GiB written out, "
                     f"{b.temp_pages * 8 / 2**10:,.0f} MiB spilled to temporary files"))
        for r in res.runs:
            rows.append((f"{r.workers} worker{'s' if r.workers > 1 else ''} / baseline",
                         f"{r.seconds / b.seconds:.2f}x"))
    return rows


def report_notes(res: BenchResult) -> str:
    runs = res.runs
    best = min(runs, key=lambda r: r.seconds)
    members = res.seeded.members
    cores = os.cpu_count() or 1
    rss = max(b for r in runs for b in r.worker_peak_rss)
    one = runs[0]
    shards = max(1, sum(one.tasks_per_worker.values()))
    cheapest = min(runs, key=lambda r: own_cpu(r) / r.members)
    floor = own_cpu(cheapest) / cheapest.members * 10_000_000 / cores
    out = [
        "One coordinator, the workers, tansu (everything in memory), Postgres (default "
        "settings, 128 MB shared buffers) and the benchmark's own producer and reader share "
        "the machine's cores. The roll was written straight into billing's tables (COPY, in "
        "join order, as the projection writes it; the table is partitioned by payer bucket) "
        "and vacuumed before the runs; between "
        "runs the period is deleted so that it can run again. The baseline writes into a "
        "table with the partition's columns and indexes.",
        "",
        "Targets: 10 M members in at most 60 s; at most 1 GiB resident per worker; within "
        "1.5x of the SQL-only baseline.",
        f"- 10 M members in 60 s: "
        f"{'met' if members >= 10_000_000 and best.seconds <= 60 else 'not met'} (best "
        f"{best.seconds:.0f} s for {members:,} members, with {best.workers} worker(s)).",
        f"- 1 GiB per worker: {'met' if rss <= 2**30 else 'not met'} (peak {_mib(rss)}).",
    ]
    if res.baseline is not None:
        ratio = best.seconds / res.baseline.seconds
        out.append(f"- 1.5x of the SQL-only baseline: {'met' if ratio <= 1.5 else 'not met'} "
                   f"({ratio:.2f}x; " + ", ".join(
                       f"{r.workers} worker(s) {r.seconds / res.baseline.seconds:.2f}x"
                       for r in runs) + ").")
    out += [
        "",
        "What limits the run time:",
        f"- CPU. The run's own processes used {1e6 * own_cpu(cheapest) / cheapest.members:.1f}"
        f" µs of CPU per member at best ({cheapest.workers} worker(s); billing, tansu, our "
        f"Postgres backends, the benchmark's reader); at that cost "
        f"10 M members need at least {floor:.0f} s on {cores} fully free cores"
        + (", so adding workers on this machine cannot reach 60 s: the cost per member has "
           "to fall." if floor > 60 else
           "; the rest of the wall time is steps that do not overlap (below) and the "
           "payer index built when the last shard is in."),
        f"- One worker prices a shard step after step (read the roll, price, COPY the "
        f"charges, encode and send the instructions, commit), so with one worker about one "
        f"core's worth of work alternates between the worker "
        f"({one.cpu.get('worker-1', 0) / shards:.2f} s CPU a shard), Postgres "
        f"({one.cpu.get('postgres', 0) / shards:.2f} s) and tansu "
        f"({one.cpu.get('tansu', 0) / shards:.2f} s): shards took "
        f"{statistics.median(one.shard_seconds) if one.shard_seconds else 0:.2f} s each. "
        "A second worker overlaps these steps only as far as free cores allow.",
    ]
    if res.probe is not None:
        p = res.probe
        share = p["pages_touched"] / max(p["roll_pages"], 1)
        out.append(
            f"- The roll read: one shard's {p['rows']:,} rows touched "
            f"{p['pages_touched']:,} buffer pages of the roll's {p['roll_pages']:,} "
            f"({share:.1%}; estimated {p['estimated_rows']:,} rows)"
            + (": a shard reads most of the roll, so the roll's layout limits the run."
               if share > 0.25 else
               ": the roll is partitioned by payer bucket, so a shard reads its own pages."))
    if res.baseline is not None:
        b = res.baseline
        out.append(
            f"- The baseline is one Postgres backend: it dirtied "
            f"{b.dirtied_pages * 8 / 2**20:,.1f} GiB of pages through the server's shared "
            f"buffers (the new table and its brin and payer indexes) and spilled "
            f"{b.temp_pages * 8 / 2**10:,.0f} MiB of sort and hash to disk.")
    busy = [r for r in runs if other_cpu(r) > 0.2 * r.seconds]
    if busy:
        out.append("- Other work on the machine during the runs (" + ", ".join(
            f"{r.workers} worker(s): {other_cpu(r):.0f} s of CPU" for r in busy)
            + ") took cores the run could have used; the figures are from a shared machine.")
    multi = [r for r in runs if r.workers > 1]
    for r in multi:
        idle = [k for k, v in r.tasks_per_worker.items() if v == 0]
        if idle:
            out.append(
                f"- With {r.workers} workers, {', '.join(idle)} priced no shard: the "
                "period's ShardAssigned events all landed on one partition of "
                "billing.shard-tasks, so one member of the billing-workers group took them "
                "all.")
    return "\n".join(out)


def write_report(res: BenchResult, extra_notes: str = "") -> Path:
    return write_section("billing", "Billing sharing run (`make bench-billing`)",
                         report_rows(res), report_notes(res) + extra_notes)


async def main(members: int, cases: int, workers: list[int], shard_tasks: int | None,
               profile_dir: Path | None, write: bool) -> None:
    cancel_on_sigterm()
    res = await bench(members, cases, workers, shard_tasks=shard_tasks,
                      profile_dir=profile_dir)
    for a, b in report_rows(res):
        say(f"  {a}: {b}")
    say(report_notes(res))
    if write:
        out = write_report(res)
        say(f"written {out.relative_to(REPO)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--workers", default="1,2",
                        help="worker counts to run, comma-separated")
    parser.add_argument("--shard-tasks", type=int, default=None,
                        help="BILLING_SHARD_TASKS (default: the service's own default)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the billing processes under cProfile, stats in this folder")
    parser.add_argument("--no-write", action="store_true",
                        help="print the figures without writing docs/benchmarks.md")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.members, args.cases, [int(w) for w in args.workers.split(",")],
                     args.shard_tasks, args.profile, not args.no_write))
