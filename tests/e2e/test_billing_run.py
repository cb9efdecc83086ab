"""Sharded sharing runs on the real broker and Postgres (SPEC §7): the same period priced by
one worker, by three, and by workers killed with SIGKILL in the middle of the run gives the
same instructions (ids and amounts), stores every member's charge exactly once, and
balances to the fen; a dry run under a draft rulebook announces a preview and emits no
instruction.

Each run gets a private broker and database (billing's consumer group ids are fixed), a
billing coordinator process and its own billing worker processes. The roll is fed as
membership would feed it: ``MemberJoined`` events on ``membership.events``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

import asyncpg
import pytest
from devstack.broker import BrokerHandle, free_port, start_broker
from devstack.database import drop_database, fresh_database
from devstack.platform import Platform, service_env, start_platform, stop_processes
from devstack.scenario import wait_sharing_run

from mutualaid.client import PlatformClient
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.envelope import CloudEvent, encode, envelope
from mutualaid.contracts.membership import MemberJoined
from mutualaid.rulebook import DEFAULT_RULEBOOK

pytestmark = pytest.mark.e2e

SHARING = date(2020, 6, 14)
JOINED = date(2020, 1, 2)
TIMEOUT = 90.0
SHARD_TASKS = "12"


def roll() -> list[MemberJoined]:
    """2,400 members: payers with 0 to 2 family members (about 1.3 members per payer)."""
    members: list[MemberJoined] = []
    payer = ""
    for i in range(2400):
        member = f"br-{i:05d}"
        if i % 10 < 7 or not payer:
            payer = member
        members.append(MemberJoined(
            member_id=member, payer_id=payer, plan="critical_illness",
            relation="self" if payer == member else "child", masked_name="王*",
            masked_national_id="310***********1234", birth_date=date(1985, 1, 1),
            joined_on=JOINED, waiting_period_ends_on=JOINED + timedelta(days=90),
            rule_version="2020-01-01"))
    return members


def case(case_id: str, member_id: str, benefit_fen: int, approved_on: date) -> CaseApproved:
    return CaseApproved(case_id=case_id, member_id=member_id, payer_id=member_id,
                        plan="critical_illness", benefit_fen=benefit_fen,
                        rule_version="2020-01-01", diagnosed_on=date(2020, 5, 1),
                        approved_on=approved_on)


CASES = [case("br-case-1", "br-00000", 30_000_000, date(2020, 6, 10)),
         case("br-case-2", "br-00003", 10_000_000, date(2020, 6, 11)),
         case("br-case-3", "br-00007", 12_345_601, date(2020, 6, 12))]


@dataclass
class Stack:
    broker: BrokerHandle
    url: str
    coordinator: Platform
    client: PlatformClient
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        log = (self.log_dir / f"worker-{n}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "billing"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env=service_env("billing", bootstrap=self.broker.bootstrap, database_url=self.url,
                            port=free_port(), extra={"ROLE": "worker",
                                                     "SHARD_TASKS": SHARD_TASKS}))
        self.workers.append(proc)
        return proc

    async def publish(self, event: object) -> None:
        ce = envelope(event, source="tests/billing-run", correlationid=None)  # type: ignore[arg-type]
        await self.client.send_raw(event.topic(), encode(ce), key=ce.subject.encode(),  # type: ignore[attr-defined]
                                   wait=False)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    @asynccontextmanager
    async def holding_open_shards(self) -> AsyncIterator[None]:
        """Lock the task rows of the shards not done, for as long as the block runs."""
        conn = await asyncpg.connect(self.url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM billing.shard_tasks WHERE status <> 'done' "
                                   "FOR UPDATE")
                yield
        finally:
            await conn.close()

    async def wait_worker_in_shard(self) -> None:
        """Until a billing backend waits on a task row lock: a worker inside a shard."""
        conn = await asyncpg.connect(self.url)
        try:
            for _ in range(int(TIMEOUT * 50)):
                if await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock' "
                        "AND query LIKE '%shard_tasks%'"):
                    return
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        raise TimeoutError("no worker took up a shard")

    async def wait_roll(self, members: int, cases: int) -> None:
        for _ in range(int(TIMEOUT * 10)):
            (row,) = await self.fetch(
                "SELECT (SELECT count(*) FROM billing.roll_members) AS m, "
                "(SELECT count(*) FROM billing.approved_cases) AS c")
            if row["m"] >= members and row["c"] >= cases:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("billing's roll did not fill")


@asynccontextmanager
async def stack(tmp: Path, workers: int) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:8]
    log_dir = tmp / tag
    log_dir.mkdir(parents=True)
    broker = start_broker(free_port(), run_dir=log_dir)
    url = fresh_database(f"e2e_billing_{tag}")
    coordinator = start_platform(bootstrap=broker.bootstrap, database_url=url,
                                 ports={"billing": free_port()}, services=("billing",),
                                 log_dir=log_dir,
                                 extra_env={"ROLE": "coordinator", "SHARD_TASKS": SHARD_TASKS})
    started: list[subprocess.Popen[bytes]] = []
    try:
        async with PlatformClient(broker.bootstrap, source="tests/billing-run") as client:
            s = Stack(broker, url, coordinator, client, log_dir, started)
            for _ in range(workers):
                s.start_worker()
            members = roll()
            for m in members:
                await s.publish(m)
            for c in CASES:
                await s.publish(c)
            await client.flush()
            await s.wait_roll(len(members), len(CASES))
            yield s
    finally:
        stop_processes([p for p in started if p.poll() is None])
        coordinator.stop()
        broker.stop()
        drop_database(url)


@dataclass(frozen=True)
class Outcome:
    notice: dict[str, object]
    instructions: dict[str, tuple[int, tuple[tuple[str, int], ...]]]
    batches_read: int


def outcome_of(events: list[CloudEvent]) -> Outcome:
    (notice,) = [e.data for e in events if e.type == "billing.SharingAnnounced"]
    instructions: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = {}
    batches = [e for e in events if e.type == "billing.PaymentInstructionBatch"]
    for b in batches:
        for i in b.data["instructions"]:
            value = (i["amount_fen"], tuple((ln["member_id"], ln["amount_fen"])
                                            for ln in i["lines"]))
            # A batch sent again after a crash carries the same instructions: same value.
            assert instructions.setdefault(i["instruction_id"], value) == value
    return Outcome(notice, instructions, len(batches))  # type: ignore[arg-type]


async def share(s: Stack) -> Outcome:
    run = await s.client.send(RunSharingPeriod(sharing_date=SHARING, plans=("critical_illness",)))
    events = await wait_sharing_run(s.client, run, timeout=TIMEOUT)
    assert any(e.type == "billing.SharingPeriodCompleted" for e in events), events[-1].data
    return outcome_of(events)


async def check_books(s: Stack, out: Outcome) -> None:
    """Every member on the roll charged exactly once; the stored charges, the notice and
    the instructions tell the same story, to the fen."""
    (row,) = await s.fetch(
        "SELECT count(*) AS n, count(DISTINCT member_id) AS distinct_n, "
        "sum(share_fen) AS shares, sum(member_pays_fen) AS pays, "
        "sum(share_fen - member_pays_fen) AS subsidy FROM billing.charges "
        "WHERE period_id = $1", f"{SHARING}/critical_illness")
    n = out.notice
    assert row["n"] == row["distinct_n"] == n["members_sharing"] == 2400
    assert row["shares"] == n["total_fen"] == n["benefits_fen"] + n["fee_fen"]
    assert row["pays"] + row["subsidy"] == n["benefits_fen"] + n["fee_fen"]
    assert row["pays"] == n["member_debits_fen"]
    debits = {k: v for k, v in out.instructions.items() if "/debit/" in k}
    credits = {k: v for k, v in out.instructions.items() if "/credit/" in k}
    assert sum(a for a, _ in debits.values()) == n["member_debits_fen"]
    assert sum(a for a, _ in credits.values()) == n["benefits_fen"]
    assert all(a == sum(x for _, x in lines) for a, lines in debits.values())
    assert len(credits) == len(CASES)


@pytest.fixture(scope="module")
async def reference(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    async with stack(tmp_path_factory.mktemp("billing-1"), workers=1) as s:
        out = await share(s)
        await check_books(s, out)
        return out


async def test_one_worker_balances_and_charges_everyone_once(reference: Outcome) -> None:
    n = reference.notice
    assert n["cases"] == 3 and n["members_sharing"] == 2400
    base, extra = divmod(n["total_fen"], 2400)
    assert (n["base_share_fen"], n["members_paying_one_fen_more"]) == (base, extra)
    assert n["subsidy_fen"] == 0  # 2020 rules: no caps, no operator-funded window
    # one debit per payer (the payer and their family on one instruction)
    payers = {m.payer_id for m in roll()}
    assert {k.rsplit("/", 1)[1] for k in reference.instructions if "/debit/" in k} == payers


async def test_three_workers_give_the_same_instructions(
        reference: Outcome, tmp_path: Path) -> None:
    async with stack(tmp_path, workers=3) as s:
        out = await share(s)
        await check_books(s, out)
        done = await s.fetch("SELECT count(*) AS n FROM billing.shard_tasks "
                             "WHERE status='done'")
        assert done[0]["n"] == int(SHARD_TASKS)
    assert out.notice == reference.notice
    assert out.instructions == reference.instructions


async def test_workers_killed_mid_run_leave_the_same_instructions(
        reference: Outcome, tmp_path: Path) -> None:
    async with stack(tmp_path, workers=1) as s:
        first = s.workers[0]
        os.kill(first.pid, signal.SIGSTOP)  # frozen holding whatever it has fetched
        run = await s.client.send(RunSharingPeriod(sharing_date=SHARING,
                                                   plans=("critical_illness",)))
        await s.client.wait_until(
            lambda: any(e.type == "billing.SharingRunStarted" for e in s.client.caused_by(run)),
            timeout=TIMEOUT, what="the run to start")
        # Kill a worker without warning inside a shard, twice over. The test holds the rows
        # of the shards not done, so a worker that takes up a shard waits on them inside
        # its shard's transaction: that is where it is killed, whatever the machine's pace.
        done_at_kills = []
        for round_no in range(2):
            victim = s.workers[-1]
            async with s.holding_open_shards():
                if round_no == 0:
                    os.kill(first.pid, signal.SIGCONT)
                await s.wait_worker_in_shard()
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(10)
                (row,) = await s.fetch(
                    "SELECT count(*) FILTER (WHERE status='done') AS done, count(*) AS n "
                    "FROM billing.shard_tasks")
                done_at_kills.append((row["done"], row["n"]))
            s.start_worker()  # the locks go with the block: the new worker may go on
        events = await wait_sharing_run(s.client, run, timeout=TIMEOUT)
        assert any(e.type == "billing.SharingPeriodCompleted" for e in events)
        out = outcome_of(events)
        await check_books(s, out)
    assert all(done < n for done, n in done_at_kills), done_at_kills
    assert out.notice == reference.notice
    assert out.instructions == reference.instructions


async def test_a_dry_run_under_a_draft_rulebook_previews_and_emits_no_instruction(
        tmp_path: Path) -> None:
    packaged = (files("mutualaid.rulebook") / DEFAULT_RULEBOOK).read_text("utf-8")
    draft = packaged.replace("management_fee_bps: 800", "management_fee_bps: 1200")
    assert draft != packaged
    async with stack(tmp_path, workers=1) as s:
        refused = await s.client.send(RunSharingPeriod(
            sharing_date=SHARING, plans=("critical_illness",), draft_rulebook=draft))
        events = await wait_sharing_run(s.client, refused, timeout=TIMEOUT)
        assert events[-1].data["reason_code"] == "DRAFT_RULEBOOK_NEEDS_DRY_RUN"

        preview = await s.client.send(RunSharingPeriod(
            sharing_date=SHARING, plans=("critical_illness",), dry_run=True,
            draft_rulebook=draft))
        events = await wait_sharing_run(s.client, preview, timeout=TIMEOUT)
        (notice,) = [e.data for e in events if e.type == "billing.SharingAnnounced"]
        assert notice["dry_run"] is True
        benefits = sum(c.benefit_fen for c in CASES)
        assert notice["fee_fen"] == (benefits * 1200 + 5000) // 10000
        assert not [e for e in events if e.type == "billing.PaymentInstructionBatch"]
        # nothing stored for a preview, and the real period is still to be run
        assert (await s.fetch("SELECT count(*) AS n FROM billing.charges"))[0]["n"] == 0
        real = await share(s)
        assert real.notice["fee_fen"] == (benefits * 800 + 5000) // 10000
