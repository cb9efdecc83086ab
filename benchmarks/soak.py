"""`make soak`: the five services under a steady load for a bounded time (default 10
minutes, `--minutes`), on loopback with the real broker and Postgres.

Commands at a steady rate across every service: payers and their families join, jurors
qualify, claims go through filing, investigation, review and final review; and a calendar
turns once per cycle (a third of the run by default): a publicity round opens, members object
to some cases, the round closes (passed cases are approved, disputed ones go to the member
jury), jurors vote, the vote is closed, and the period's sharing run is made.

Reported: throughput (commands and events a second), p50/p99 command-to-outcome latency
(from the send to the first outcome read back: the success event or the rejection), memory
per service (RSS from /proc at the start of the load, after a warm-up, and at the end), and
the check that matters most: every command has exactly one outcome (none lost, none doubled),
no event id is read twice, and every sharing period's money equation holds. Not part of
`make test`; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
sys.path.insert(0, str(REPO / "benchmarks"))

from devstack import cancel_on_sigterm  # noqa: E402
from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402
from devstack.platform import SERVICES, Platform, start_platform  # noqa: E402
from report import say, write_section  # noqa: E402

from mutualaid.client import command_event  # noqa: E402
from mutualaid.contracts import Command, topics  # noqa: E402
from mutualaid.contracts.billing import RunSharingPeriod  # noqa: E402
from mutualaid.contracts.claims import FileClaim, RecordInvestigation, ReviewClaim  # noqa: E402
from mutualaid.contracts.common import Document  # noqa: E402
from mutualaid.contracts.jury import CastVote, CloseVoting, QualifyJuror  # noqa: E402
from mutualaid.contracts.membership import JoinPlan  # noqa: E402
from mutualaid.contracts.publicity import (  # noqa: E402
    ClosePublicityRound, FileObjection, OpenPublicityRound)
from mutualaid.identity import synthetic_id  # noqa: E402

SOURCE = "bench/soak"
JOINED = date(2019, 6, 1)  # everyone is on every roll and past the waiting period
REGIONS = ("110101", "310104", "440305", "330106", "510107", "420102", "610113", "370202")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍"

#: The event that is a command's one outcome when it succeeds (a rejection is the other).
PRIMARY: dict[str, tuple[str, ...]] = {
    "membership.JoinPlan": ("membership.MemberJoined",),
    "jury.QualifyJuror": ("jury.JurorQualified",),
    "claims.FileClaim": ("claims.ClaimFiled",),
    "claims.RecordInvestigation": ("claims.ClaimInvestigated",),
    "claims.ReviewClaim": ("claims.ClaimReviewed",),
    "publicity.OpenPublicityRound": ("publicity.PublicityRoundOpened",),
    "publicity.FileObjection": ("publicity.ObjectionFiled",),
    "publicity.ClosePublicityRound": ("publicity.PublicityRoundClosed",),
    "jury.CastVote": ("jury.VoteCast",),
    "jury.CloseVoting": ("jury.JuryVerdict", "jury.VotingInconclusive"),
    "billing.RunSharingPeriod": ("billing.SharingRunStarted",),
}


@dataclass
class Sent:
    type: str
    at: float
    outcome_at: float | None = None
    outcomes: int = 0  # primary events and rejections read for it
    rejected: str | None = None


@dataclass
class Soak:
    """What was sent, what came back, and the state the load generator steers by."""

    sent: dict[str, Sent] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    duplicate_events: int = 0
    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    payers: list[str] = field(default_factory=list)  # joined, in the order they joined
    joined_at: dict[str, float] = field(default_factory=dict)
    family_of: dict[str, int] = field(default_factory=dict)
    jurors: list[str] = field(default_factory=list)
    qualified: set[str] = field(default_factory=set)
    claimants: set[str] = field(default_factory=set)
    case_of: dict[str, str] = field(default_factory=dict)  # case -> claimant
    published: dict[date, list[str]] = field(default_factory=lambda: defaultdict(list))
    objectors: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    voted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    jury_open: dict[str, datetime] = field(default_factory=dict)  # case -> window closes
    approved: set[str] = field(default_factory=set)
    runs: dict[str, float] = field(default_factory=dict)  # run id -> sent at
    run_done: dict[str, float] = field(default_factory=dict)
    periods: list[dict[str, Any]] = field(default_factory=list)
    next_step: list[tuple[str, Command]] = field(default_factory=list)


class Load:
    def __init__(self, producer: AIOKafkaProducer, soak: Soak, seed: int) -> None:
        self.producer = producer
        self.soak = soak
        self.rng = random.Random(seed)
        self.people = 0

    async def send(self, command: Command) -> str:
        command_id = str(uuid.uuid4())
        self.soak.sent[command_id] = Sent(command.TYPE, time.monotonic())
        await self.producer.send(topics.commands(command.service()),
                                 command_event(command, source=SOURCE, id=command_id),
                                 key=command.subject().encode())
        return command_id

    def person(self, birth_from: date, relation: str) -> tuple[str, str]:
        n = self.people
        self.people += 1
        birth = birth_from + timedelta(days=n // 8000)
        national_id = synthetic_id(REGIONS[n % 8], birth, n // 8 % 1000)
        name = self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN, k=2))
        return national_id, name

    async def join(self) -> None:
        s = self.soak
        settled = [p for p in s.payers[-500:] if s.family_of.get(p, 0) < 2
                   and time.monotonic() - s.joined_at[p] > 2]
        if settled and self.rng.random() < 0.3:  # a family member of a payer who has joined
            payer = self.rng.choice(settled)
            s.family_of[payer] = s.family_of.get(payer, 0) + 1
            relation = self.rng.choice(("spouse", "child"))
            birth = date(2008, 1, 1) if relation == "child" else date(1972, 1, 1)
            national_id, name = self.person(birth, relation)
            await self.send(JoinPlan(
                member_id=f"soak-m{self.people:07d}", payer_id=payer, plan="critical_illness",
                national_id=national_id, name=name, relation=relation,
                health_declaration=True, joined_on=JOINED))
            return
        national_id, name = self.person(date(1970, 1, 1), "self")
        member = f"soak-m{self.people:07d}"
        await self.send(JoinPlan(
            member_id=member, payer_id=member, plan="critical_illness",
            national_id=national_id, name=name, relation="self",
            payer_credit_score=self.rng.randint(650, 900), health_declaration=True,
            joined_on=JOINED))

    def settled_payer(self, exclude: set[str]) -> str | None:
        s = self.soak
        for _ in range(20):
            if not s.payers:
                return None
            p = s.payers[self.rng.randrange(max(0, len(s.payers) - 5000), len(s.payers))]
            if p not in exclude and time.monotonic() - s.joined_at[p] > 3:
                return p
        return None

    async def qualify(self) -> None:
        member = self.settled_payer(set(self.soak.jurors) | self.soak.claimants)
        if member is not None:
            self.soak.jurors.append(member)  # counted once JurorQualified is read
            await self.send(QualifyJuror(member_id=member, exam_score=self.rng.randint(80, 100),
                                         qualified_on=date(2020, 1, 1)))

    async def claim(self) -> None:
        s = self.soak
        member = self.settled_payer(s.claimants | set(s.jurors))
        if member is None:
            return
        s.claimants.add(member)
        case_id = f"soak-case-{len(s.case_of) + 1:06d}"
        s.case_of[case_id] = member
        await self.send(FileClaim(
            case_id=case_id, member_id=member, illness_code="malignant_tumour",
            diagnosed_on=date(2020, 5, 1), hospital="上海市第一人民医院",
            documents=(Document(kind="discharge_summary", sha256=f"{uuid.uuid4().hex * 2}"),)))

    async def vote(self) -> None:
        s = self.soak
        if not s.jury_open or not s.jurors:
            return
        case_id = self.rng.choice(sorted(s.jury_open))
        claimant = s.case_of.get(case_id)
        for _ in range(10):
            juror = self.rng.choice(s.jurors)
            if (juror not in s.voted[case_id] and juror not in s.objectors[case_id]
                    and juror != claimant and juror in s.qualified):
                s.voted[case_id].add(juror)
                await self.send(CastVote(case_id=case_id, juror_id=juror,
                                         approve=self.rng.random() < 0.7,
                                         cast_at=s.jury_open[case_id] - timedelta(hours=71)))
                return

    async def objections(self, round_date: date, share: float) -> int:
        s = self.soak
        filed = 0
        for case_id in s.published.get(round_date, []):
            if self.rng.random() >= share:
                continue
            objector = self.settled_payer(s.claimants | {s.case_of.get(case_id, "")})
            if objector is None:
                continue
            s.objectors[case_id].add(objector)
            await self.send(FileObjection(
                objection_id=f"soak-obj-{uuid.uuid4().hex[:12]}", case_id=case_id,
                member_id=objector, reason="the hospital record looks altered",
                filed_on=round_date + timedelta(days=1)))
            filed += 1
        return filed


def next_steps(soak: Soak, event: dict[str, Any]) -> None:
    """A claim's next step once its last one is read back."""
    data, kind = event["data"], event["type"]
    case = data.get("case_id")
    if kind == "claims.ClaimFiled":
        soak.next_step.append((case, RecordInvestigation(
            case_id=case, investigator="华安公估", verified=True,
            summary="hospital records verified", investigated_on=date(2020, 5, 10))))
    elif kind == "claims.ClaimInvestigated":
        soak.next_step.append((case, ReviewClaim(
            case_id=case, stage="review", reviewer="reviewer-01", approved=True,
            reviewed_on=date(2020, 5, 12))))
    elif kind == "claims.ClaimReviewed" and data["stage"] == "review":
        soak.next_step.append((case, ReviewClaim(
            case_id=case, stage="final", reviewer="reviewer-02", approved=True,
            reviewed_on=date(2020, 5, 13))))


class Reader:
    """Reads every event topic; keeps counts and what the load generator steers by."""

    def __init__(self, bootstrap: str, soak: Soak) -> None:
        self.soak = soak
        self.consumer = AIOKafkaConsumer(
            *[topics.events(s) for s in SERVICES], topics.PAYMENT_INSTRUCTIONS,
            *[topics.dlq(s) for s in SERVICES], bootstrap_servers=bootstrap, group_id=None,
            auto_offset_reset="earliest", max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024)
        self.dead = 0

    async def run(self) -> None:
        await self.consumer.start()
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=200, max_records=20_000)
                now = time.monotonic()
                for records in batch.values():
                    for r in records:
                        if r.topic.endswith(".dlq"):
                            self.dead += 1
                        else:
                            self.take(orjson.loads(r.value), now)
        finally:
            await self.consumer.stop()

    def take(self, event: dict[str, Any], now: float) -> None:
        s = self.soak
        s.events += 1
        if event["id"] in s.event_ids:
            s.duplicate_events += 1
            return
        s.event_ids.add(event["id"])
        kind, data = event["type"], event["data"]
        s.by_type[kind] += 1
        sent = s.sent.get(event.get("correlationid") or "")
        if sent is not None and (kind in PRIMARY.get(sent.type, ())
                                 or kind.endswith(".CommandRejected")):
            sent.outcomes += 1
            if sent.outcome_at is None:
                sent.outcome_at = now
            if kind.endswith(".CommandRejected"):
                sent.rejected = data["reason_code"]
                s.rejections[f"{sent.type}: {data['reason_code']}"] += 1
        if kind == "membership.MemberJoined" and data["relation"] == "self":
            s.payers.append(data["member_id"])
            s.joined_at[data["member_id"]] = now
        elif kind == "jury.JurorQualified":
            s.qualified.add(data["member_id"])
        elif kind == "publicity.CasePublished":
            s.published[date.fromisoformat(data["round_date"])].append(data["case_id"])
        elif kind == "jury.JuryCaseOpened":
            s.jury_open[data["case_id"]] = datetime.fromisoformat(data["voting_closes_at"])
        elif kind == "jury.VotingInconclusive":
            if data.get("voting_closes_at"):
                s.jury_open[data["case_id"]] = datetime.fromisoformat(data["voting_closes_at"])
        elif kind == "jury.JuryVerdict":
            s.jury_open.pop(data["case_id"], None)
        elif kind == "claims.CaseApproved":
            s.approved.add(data["case_id"])
        elif kind == "billing.SharingPeriodCompleted":
            run = event.get("correlationid") or ""
            s.run_done.setdefault(run, now)
            s.periods += list(data["plans"])
        elif kind in ("claims.ClaimFiled", "claims.ClaimInvestigated", "claims.ClaimReviewed"):
            next_steps(s, event)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory(platform: Platform) -> dict[str, float | None]:
    return {s: rss_mib(p.pid) for s, p in platform.processes.items()}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def calendar(load: Load, soak: Soak, cycle: int, cycle_seconds: float,
                   stop_at: float) -> None:
    """One publicity round, its objections, the jury's vote and the sharing run."""
    start = time.monotonic()
    # publicity days alternate between the 7th and the 21st of each month
    month = date(2020, 6 + cycle // 2, 1) if 6 + cycle // 2 <= 12 else date(
        2021, 6 + cycle // 2 - 12, 1)
    round_date = month.replace(day=7 if cycle % 2 == 0 else 21)
    sharing_date = round_date + timedelta(days=7)

    async def at(fraction: float) -> bool:
        wait = start + fraction * cycle_seconds - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic() < stop_at

    if not await at(0.3):  # claims have reached final review by now
        return
    say(f"  cycle {cycle + 1}: publicity round {round_date}, sharing {sharing_date}")
    await load.send(OpenPublicityRound(round_date=round_date))
    if not await at(0.35):
        return
    filed = await load.objections(round_date, share=0.3)
    say(f"  cycle {cycle + 1}: {len(soak.published.get(round_date, []))} cases published, "
        f"{filed} objections")
    if not await at(0.5):
        return
    await load.send(ClosePublicityRound(round_date=round_date))
    if not await at(0.85):  # votes meanwhile
        return
    closing = sorted(soak.jury_open.items())
    for case_id, closes in closing:
        await load.send(CloseVoting(case_id=case_id, closed_at=closes))
    say(f"  cycle {cycle + 1}: {sum(len(soak.voted[c]) for c, _ in closing)} votes on "
        f"{len(closing)} jury cases, voting closed; {len(soak.approved)} cases approved")
    if not await at(0.9):
        return
    run_id = await load.send(RunSharingPeriod(sharing_date=sharing_date))
    soak.runs[run_id] = time.monotonic()


async def steady(load: Load, soak: Soak, rates: dict[str, float], stop_at: float) -> None:
    """Each stream at its rate, topped up every 50 ms; claims' next steps as they come."""
    streams = {"join": load.join, "qualify": load.qualify, "claim": load.claim,
               "vote": load.vote}
    done = Counter[str]()
    start = time.monotonic()
    while time.monotonic() < stop_at:
        elapsed = time.monotonic() - start
        for name, fn in streams.items():
            owed = int(rates[name] * elapsed) - done[name]
            for _ in range(max(0, min(owed, 200))):
                await fn()
                done[name] += 1
        steps, soak.next_step = soak.next_step, []
        for _, command in steps:
            await load.send(command)
        await asyncio.sleep(0.05)


async def main(minutes: float, rate: float, cycles: int, seed: int) -> None:
    cancel_on_sigterm()
    run_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    broker = start_broker(free_port(), run_dir=run_dir)
    url = fresh_database(f"soak_{uuid.uuid4().hex[:8]}")
    say(f"broker {broker.bootstrap}, database {url}, logs in {run_dir}")
    platform = start_platform(bootstrap=broker.bootstrap, database_url=url,
                              ports={s: free_port() for s in SERVICES}, log_dir=run_dir)
    soak = Soak()
    reader = Reader(broker.bootstrap, soak)
    reading = asyncio.create_task(reader.run())
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    await producer.start()
    load = Load(producer, soak, seed)
    # of the commands a second: joins 60 %, votes 15 %, claims (four steps each) 16 %,
    # juror qualifications 8 %; the calendar's own commands come on top
    rates = {"join": 0.6 * rate, "vote": 0.15 * rate, "claim": 0.04 * rate,
             "qualify": 0.08 * rate}
    seconds = minutes * 60
    ready = memory(platform)
    try:
        say(f"load for {minutes:g} min at about {rate:g} commands/s; {cycles} calendar cycles")
        started = time.monotonic()
        stop_at = started + seconds
        cycle_seconds = seconds / cycles
        warm: dict[str, float | None] = {}

        async def sample_warm() -> None:
            await asyncio.sleep(min(60.0, seconds / 5))
            warm.update(memory(platform))

        async def progress() -> None:
            while True:
                await asyncio.sleep(30)
                answered = sum(1 for c in soak.sent.values() if c.outcome_at is not None)
                say(f"  {time.monotonic() - started:5.0f}s: {len(soak.sent):,} commands sent, "
                    f"{answered:,} answered, {soak.events:,} events read; RSS MiB "
                    + ", ".join(f"{s} {m:.0f}" for s, m in memory(platform).items() if m))

        async def turn_calendar() -> None:
            for k in range(cycles):
                await calendar(load, soak, k, cycle_seconds, stop_at)
                wait = started + (k + 1) * cycle_seconds - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)

        side = [asyncio.create_task(sample_warm()), asyncio.create_task(progress()),
                asyncio.create_task(turn_calendar())]
        await steady(load, soak, rates, stop_at)
        await producer.flush()
        load_seconds = time.monotonic() - started
        say(f"load stopped after {load_seconds:.0f}s; waiting for every outcome")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            missing = [c for c in soak.sent.values() if c.outcome_at is None]
            runs_open = [r for r in soak.runs if r not in soak.run_done
                         and not soak.sent[r].rejected]
            if not missing and not runs_open:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # a doubled outcome would arrive now
        end = memory(platform)
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        healthy = {s: platform.health(s) is not None for s in SERVICES}
    finally:
        await producer.stop()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        platform.stop()
        broker.stop()
        drop_database(url)

    rows, ok = figures(soak, reader.dead, load_seconds, ready, warm, end, healthy)
    notes = (
        f"{minutes:g} minutes of load at about {rate:g} commands/s (joins 60 %, votes 15 %, "
        "claims 4 % a second with four steps each, juror qualifications 8 %), plus the "
        f"calendar: {cycles} cycles of a publicity round (opened, 30 % of its cases objected "
        "to, closed: passed cases approved, disputed ones to the open-mode jury), votes, the "
        "vote closed (inconclusive below 1,000 votes, so a new window opens), and the "
        "period's sharing run. Latency is from a command's send to the first outcome read "
        "back from its service's events (its success event or its rejection); a sharing "
        "run's completion is timed separately. One process per service with its outbox "
        "relay, tansu, Postgres and the load generator share the machine. `make soak` "
        "(`benchmarks/soak.py --minutes M --rate R --cycles C`) is not part of `make test`.")
    out = write_section("soak", "Soak (`make soak`)", rows, notes)
    say(f"written {out.relative_to(REPO)}")
    if not ok:
        raise SystemExit("lost or doubled outcomes, unhealthy services or a broken equation")


def figures(soak: Soak, dead: int, seconds: float, ready: dict[str, float | None],
            warm: dict[str, float | None], end: dict[str, float | None],
            healthy: dict[str, bool]) -> tuple[list[tuple[str, str]], bool]:
    sent = list(soak.sent.values())
    lost = [c for c in sent if c.outcome_at is None]
    doubled = [c for c in sent if c.outcomes > 1]
    latencies = [c.outcome_at - c.at for c in sent if c.outcome_at is not None]
    by_type: dict[str, list[float]] = defaultdict(list)
    for c in sent:
        if c.outcome_at is not None:
            by_type[c.type].append(c.outcome_at - c.at)
    runs = [soak.run_done[r] - t for r, t in soak.runs.items() if r in soak.run_done]
    broken = [p for p in soak.periods if p["member_debits_fen"] + p["subsidy_fen"]
              != p["benefits_fen"] + p["fee_fen"]]
    say(f"{len(sent):,} commands in {seconds:.0f}s; lost {len(lost)}, doubled {len(doubled)}, "
        f"duplicate event ids {soak.duplicate_events}, DLQ {dead}; rejections "
        f"{dict(soak.rejections) or 'none'}")
    for t, values in sorted(by_type.items()):
        say(f"  {t}: {len(values):,}, p50 {1000 * percentile(values, 0.5):.0f} ms, "
            f"p99 {1000 * percentile(values, 0.99):.0f} ms")

    def mem(s: str) -> str:
        a, w, e = ready.get(s), warm.get(s), end.get(s)
        if a is None or w is None or e is None:
            return "n/a"
        return (f"{a:.0f} at start, {w:.0f} after warm-up, {e:.0f} at the end "
                f"({e - w:+.0f} MiB, {100 * (e - w) / w:+.0f} % since warm-up)")

    counts = soak.by_type
    rows = [
        ("commands sent (over the load)", f"{len(sent):,} in {seconds:.0f} s: "
                                          f"{len(sent) / seconds:,.0f} commands/s"),
        ("events read back (every event topic)", f"{soak.events:,}: "
                                                 f"{soak.events / seconds:,.0f} events/s"),
        ("command-to-outcome latency, all commands", f"p50 {1000 * percentile(latencies, .5):,.0f} ms, "
                                                     f"p99 {1000 * percentile(latencies, .99):,.0f} ms, "
                                                     f"max {1000 * max(latencies, default=0):,.0f} ms"),
        *[(f"latency {t.split('.')[1]} ({len(v):,})",
           f"p50 {1000 * percentile(v, .5):,.0f} ms, p99 {1000 * percentile(v, .99):,.0f} ms")
          for t, v in sorted(by_type.items()) if t in (
              "membership.JoinPlan", "claims.FileClaim", "claims.ReviewClaim", "jury.CastVote",
              "publicity.FileObjection")],
        ("sharing runs: sent, completed, time to completion",
         f"{len(soak.runs)}, {len(runs)}, " + (", ".join(f"{r:.1f} s" for r in runs) or "-")),
        ("flow", f"{counts['membership.MemberJoined']:,} joined, "
                 f"{counts['jury.JurorQualified']:,} jurors, {counts['claims.ClaimFiled']:,} "
                 f"claims filed, {counts['claims.CaseReadyForPublicity']:,} final-reviewed, "
                 f"{counts['publicity.CasePublished']:,} published, "
                 f"{counts['publicity.ObjectionFiled']:,} objections, "
                 f"{counts['claims.CaseApproved']:,} approved, "
                 f"{counts['jury.JuryCaseOpened']:,} to the jury, "
                 f"{counts['jury.VoteCast']:,} votes, "
                 f"{counts['billing.SharingPeriodCompleted']:,} sharing runs completed "
                 f"({len(soak.periods)} plan periods)"),
        ("lost outcomes (a command with none)", f"{len(lost)}"),
        ("doubled outcomes (a command with two; an event id read twice)",
         f"{len(doubled)}; {soak.duplicate_events}"),
        ("rejections, DLQ entries", f"{sum(soak.rejections.values())} "
                                    f"({dict(soak.rejections) or 'none'}), {dead}"),
        ("money equation per plan period", f"{len(soak.periods) - len(broken)} of "
                                           f"{len(soak.periods)} hold"),
        *[(f"{s} RSS MiB", mem(s)) for s in SERVICES],
        ("healthy at the end (/health)", ", ".join(f"{s} {'yes' if h else 'NO'}"
                                                   for s, h in healthy.items())),
    ]
    ok = (not lost and not doubled and not soak.duplicate_events and not broken
          and all(healthy.values()) and dead == 0)
    return rows, ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=150.0,
                        help="steady commands a second across the services (default 150)")
    parser.add_argument("--cycles", type=int, default=3,
                        help="calendar cycles (round, objections, jury, sharing run) in the run")
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.rate, args.cycles, args.seed))
