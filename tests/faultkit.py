"""What the fault tests (tests/e2e/test_faults*.py) share: a seeded full flow whose every
command is counted, the means to kill and restart service processes and to run extra
replicas, and waits on the services' own tables.

Sizes come from the environment, so a soak run can go much further than ``make test``:
``FAULT_ROUNDS`` (faults injected per test, default per test), ``FAULT_SEED`` (the seed of
the scenario and of the faults; default per test). Every test prints the values it ran with.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from devstack import log_tail
from devstack.broker import free_port
from devstack.platform import SERVICES, Platform, fetch_health, service_env
from devstack.scenario import MonthConfig, claims_for, members_for, wait_sharing_run

from prometheus_client.parser import text_string_to_metric_families

from mutualaid.client import PlatformClient
from mutualaid.contracts import Command
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.claims import AppealClaim, WithdrawClaim
from mutualaid.contracts.envelope import CloudEvent
from mutualaid.contracts.jury import CastVote, CloseVoting, QualifyJuror
from mutualaid.contracts.membership import LeavePlan
from mutualaid.contracts.publicity import ClosePublicityRound, FileObjection, OpenPublicityRound


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def fault_rounds(default: int) -> int:
    return env_int("FAULT_ROUNDS", default)


def fault_seed(default: int) -> int:
    return env_int("FAULT_SEED", default)


# -- the services' own tables ----------------------------------------------------------------

#: Connection failures a test's own queries may see while it terminates backends.
DB_DOWN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
           asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CannotConnectNowError,
           asyncpg.exceptions.InternalClientError)


class Database:
    """Reads the platform's database with a connection per query, so that a test that
    terminates every backend does not break its own waits."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        for attempt in range(20):
            try:
                conn = await asyncpg.connect(self.url, timeout=10)
                try:
                    return await conn.fetch(query, *args)
                finally:
                    await conn.close(timeout=5)
            except DB_DOWN:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def value(self, query: str, *args: object) -> Any:
        rows = await self.fetch(query, *args)
        return tuple(rows[0].values()) if len(rows[0]) > 1 else rows[0][0]

    async def wait(self, query: str, expected: object, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            seen = await self.value(query)
            if seen == expected:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: "
                           f"{seen!r}, expected {expected!r}")

    async def outbox_backlog(self) -> dict[str, int]:
        """Records waiting in each service's outbox (a row may hold several)."""
        rows = await self.fetch(" UNION ALL ".join(
            f"SELECT '{s}' AS s, COALESCE(sum(records), 0) AS n FROM {s}.outbox"
            for s in SERVICES))
        return {r["s"]: r["n"] for r in rows}


# -- processes ---------------------------------------------------------------------------------

@dataclass
class Replica:
    service: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Processes:
    """Kills and restarts a platform's service processes and runs extra replicas of them,
    each started exactly as ``start_platform`` starts a service."""

    platform: Platform
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)
    replicas: list[Replica] = field(default_factory=list)

    def _spawn(self, service: str, port: int, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", service], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env=service_env(service, bootstrap=self.platform.bootstrap,
                                database_url=self.platform.database_url, port=port,
                                extra=self.extra_env))

    def kill(self, service: str) -> None:
        """SIGKILL, no warning: no shutdown hook, no offset commit, no relay drain."""
        proc = self.platform.processes[service]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        self.kills[service] += 1

    def restart(self, service: str) -> None:
        self.platform.processes[service] = self._spawn(
            service, self.platform.ports[service], self.platform.logs[service])

    def start_replica(self, service: str) -> Replica:
        port = free_port()
        log = self.log_dir / f"{service}-replica-{len(self.replicas)}.log"
        replica = Replica(service, port, self._spawn(service, port, log), log)
        self.replicas.append(replica)
        return replica

    async def stop_replica(self, replica: Replica, *, kill: bool = False,
                           timeout: float = 30) -> int:
        """SIGTERM (a graceful leave) or SIGKILL; waits without blocking the event loop, so
        the test's stream of commands goes on meanwhile. Returns the exit code."""
        proc = replica.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        return proc.wait(10)

    def stop_replicas(self) -> None:
        for replica in self.replicas:
            if replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait(10)

    def check_running(self) -> None:
        """Every service process still runs (none died of a fault it should survive)."""
        for service, proc in self.platform.processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"{service} exited with {proc.returncode}:\n"
                                     f"{log_tail(self.platform.logs[service])}")

    async def wait_healthy(self, ports: dict[str, int] | None = None, *,
                           timeout: float = 120) -> None:
        ports = ports if ports is not None else self.platform.ports
        deadline = time.monotonic() + timeout
        waiting = dict(ports)
        while waiting:
            for name, port in list(waiting.items()):
                if fetch_health(port) is not None:
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"not healthy after {timeout:.0f}s: {sorted(waiting)}")
            if waiting:
                await asyncio.sleep(0.3)


def log_count(log_dir: Path, event: str) -> int:
    """How many log lines of the services' logs in ``log_dir`` name this event."""
    needle = f'"event": "{event}"'
    return sum(line.count(needle) for path in log_dir.glob("*.log")
               for line in path.read_text(errors="replace").splitlines())


def metric(port: int, name: str) -> float | None:
    """One unlabelled sample of a service's /metrics, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None


# -- what the topics say -----------------------------------------------------------------------

def own_outcome(client: PlatformClient, command_id: str, service: str) -> list[CloudEvent]:
    """The distinct events (by CloudEvent id) a command's own service emitted for it."""
    seen: dict[str, CloudEvent] = {}
    for e in client.caused_by(command_id):
        if e.type.startswith(service + ".") and e.id not in seen:
            seen[e.id] = e
    return list(seen.values())


def outcome_problems(client: PlatformClient, sent: dict[str, str]) -> list[str]:
    """Every command sent (id -> service) has exactly one outcome: success events, or one
    ``CommandRejected`` naming it, never both; copies of one event (same id) are one."""
    problems = []
    for command_id, service in sent.items():
        events = own_outcome(client, command_id, service)
        rejections = [e for e in events if e.type == f"{service}.CommandRejected"]
        successes = [e for e in events if e.type != f"{service}.CommandRejected"]
        if not events:
            problems.append(f"{command_id} ({service}): no outcome")
        elif rejections and (successes or len(rejections) > 1):
            problems.append(f"{command_id} ({service}): {[e.type for e in events]}")
        elif any(e.data.get("command_id") != command_id for e in rejections):
            problems.append(f"{command_id} ({service}): rejection names another command")
    return problems


def catalogue(client: PlatformClient) -> dict[str, tuple[str, str | None, str | None, bytes]]:
    """Every event read, by CloudEvent id: type, subject, correlation id and data. Copies of
    an event (the relay delivers at least once) must be identical: a second event under
    one id with other content is a failure of its own."""
    out: dict[str, tuple[str, str | None, str | None, bytes]] = {}
    for e in client.events:
        value = (e.type, e.subject, e.correlationid,
                 orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS))
        if out.setdefault(e.id, value) != value:
            raise AssertionError(f"two different events under one id {e.id}: "
                                 f"{out[e.id]} and {value}")
    return out


def catalogue_diff(expected: dict[str, tuple[Any, ...]], got: dict[str, tuple[Any, ...]]
                   ) -> list[str]:
    """What differs between two runs' events, compared by content (type, subject,
    correlation id, data), each distinct event counted once: an event lost or doubled (a
    second event with the same content under another id) shows. Ids are not compared:
    most derive from their cause alone, but events a billing coordinator emits when a
    period's last shard is in derive from whichever shard result came last."""
    want, have = Counter(expected.values()), Counter(got.values())
    lines = []
    for value, n in sorted((want - have).items()):
        lines.append(f"missing {n} x {value[0]} {value[1]}: {value[3][:300]!r}")
    for value, n in sorted((have - want).items()):
        lines.append(f"extra {n} x {value[0]} {value[1]}: {value[3][:300]!r}")
    return lines


async def settle(client: PlatformClient, db: Database, *, quiet: float = 3.0,
                 timeout: float = 120, want: Callable[[], bool] | None = None) -> bool:
    """Until every outbox is empty, ``want()`` holds (e.g. every expected event read), no new
    event has been read for ``quiet`` seconds. False when that did not happen in time (the
    caller's comparison then says what is missing)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        ids = {e.id for e in client.events}
        if len(ids) != last:
            last, since = len(ids), time.monotonic()
        backlog = await db.outbox_backlog()
        if (not any(backlog.values()) and (want is None or want())
                and time.monotonic() - since >= quiet):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


# -- the full flow -----------------------------------------------------------------------------

CASE_ROLES = ("approved", "approved", "appealed", "disputed", "withdrawn")
#: Where every case of the flow ends, by its role.
EXPECTED_STATES = {"approved": "approved", "appealed": "approved", "disputed": "in_jury",
                   "withdrawn": "withdrawn"}
ROUND = date(2020, 6, 7)
SHARING = date(2020, 6, 14)
QUALIFIED_ON = date(2020, 6, 1)
LEFT_ON = date(2020, 6, 1)

#: The flow's steps, in order: each sends its commands, then waits for every outcome.
STEPS = ("payer joins", "family joins", "leaves", "juror qualifications", "claims filed",
         "investigations", "reviews", "final reviews and appeal", "panel votes",
         "panel verdict", "round opening", "objection", "round closing", "open votes",
         "open verdict", "sharing run")

Fault = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class FlowConfig:
    tag: str = "flt"
    seed: int = 7
    members: int = 60
    timeout: float = 240.0


@dataclass
class FlowResult:
    sent: dict[str, str]  # command id -> the service it was sent to
    case_roles: dict[str, str]  # case id -> role
    run_id: str
    run_events: list[CloudEvent]

    @property
    def expected_states(self) -> dict[str, str]:
        return {c: EXPECTED_STATES[r] for c, r in self.case_roles.items()}


class Flow:
    """Join, leave, qualify jurors, five claims (two approved, one refused at review and
    won on appeal before a drawn panel, one disputed at publicity and left undecided by an
    open jury, one withdrawn), a publicity round, and the sharing run. Every command has a
    fixed id, so a second run of the same config sends the same commands under the same ids
    and, the event ids deriving from their causes, should produce the same events.

    ``fault`` is called with the step's name after its commands are sent and before their
    outcomes are awaited: the place to kill something while they are being handled."""

    def __init__(self, client: PlatformClient, db: Database, cfg: FlowConfig,
                 fault: Fault | None = None, say: Callable[[str], None] = lambda _: None
                 ) -> None:
        self.client = client
        self.db = db
        self.cfg = cfg
        self.fault = fault
        self.say = say
        self.sent: dict[str, str] = {}
        self.last_ids: list[str] = []
        self._n = 0

    async def step(self, name: str, commands: Sequence[Command]) -> list[list[CloudEvent]]:
        """Send, inject the step's faults, wait for every outcome; returns them."""
        assert name in STEPS, name
        ids = []
        for command in commands:
            self._n += 1
            command_id = f"{self.cfg.tag}-{self.cfg.seed}-{self._n:05d}"
            ids.append(await self.client.send(command, id=command_id))
            self.sent[command_id] = command.service()
        await self.client.flush()
        started = time.monotonic()
        if self.fault is not None:
            await self.fault(name)
        services = [c.service() for c in commands]
        self.last_ids = ids
        await self.client.wait_until(
            lambda: all(own_outcome(self.client, i, s) for i, s in zip(ids, services, strict=True)),
            timeout=self.cfg.timeout, what=f"the outcomes of {len(ids)} x {name}")
        self.say(f"  {name}: {len(ids)} commands answered in "
                 f"{time.monotonic() - started:.1f}s")
        return [own_outcome(self.client, i, s) for i, s in zip(ids, services, strict=True)]

    async def must(self, name: str, commands: Sequence[Command]) -> list[list[CloudEvent]]:
        outcomes = await self.step(name, commands)
        refused = [o[0].data for o in outcomes if o[0].type.endswith("CommandRejected")]
        if refused:
            raise AssertionError(f"{name}: refused {refused}")
        return outcomes

    async def synced(self, joined: int, left: int) -> None:
        """Every service's copy of the roll has the joins and the exits."""
        for what, query in (
                ("claims", "SELECT count(*), count(covered_until) FROM claims.coverage"),
                ("publicity", "SELECT count(*), count(*) FILTER (WHERE NOT active) "
                              "FROM publicity.members"),
                ("jury", "SELECT count(*), count(*) FILTER (WHERE NOT active) FROM jury.members"),
                ("billing", "SELECT count(*), count(left_on) FROM billing.roll_members")):
            await self.db.wait(query, (joined, left), timeout=self.cfg.timeout,
                               what=f"{what}'s copy of the roll")

    def _event(self, type_name: str, subject: str, **data: object) -> CloudEvent:
        for e in self.client.of_type(type_name):
            if e.subject == subject and all(e.data.get(k) == v for k, v in data.items()):
                return e
        raise LookupError(type_name)

    async def _wait_event(self, type_name: str, subject: str, **data: object) -> CloudEvent:
        def found() -> bool:
            try:
                self._event(type_name, subject, **data)
            except LookupError:
                return False
            return True
        await self.client.wait_until(found, timeout=self.cfg.timeout,
                                     what=f"{type_name} for {subject}")
        return self._event(type_name, subject, **data)

    async def run(self) -> FlowResult:
        cfg = self.cfg
        rng = random.Random(cfg.seed)
        payers, family = members_for(MonthConfig(members=cfg.members, tag=cfg.tag,
                                                 seed=cfg.seed))
        members = [*payers, *family]
        steps = claims_for(MonthConfig(claims=len(CASE_ROLES), tag=cfg.tag, seed=cfg.seed,
                                       publicity_date=ROUND), members)
        roles = {s[0].case_id: role for s, role in zip(steps, CASE_ROLES, strict=True)}  # type: ignore[attr-defined]
        claimants = {s[0].member_id for s in steps}  # type: ignore[attr-defined]
        by_id = {m.member_id: m for m in members}

        joined = await self.step("payer joins", payers)
        joined += await self.step("family joins", family)
        ok = [m for m, o in zip(members, joined, strict=True) if o[0].type == "membership.MemberJoined"]
        ok_ids = {m.member_id for m in ok}
        leavers = rng.sample([m for m in family if m.member_id not in claimants
                              and m.member_id in ok_ids], 3)
        await self.must("leaves", [LeavePlan(member_id=m.member_id, left_on=LEFT_ON,
                                             reason="moved abroad") for m in leavers])
        await self.synced(len(ok), len(leavers))
        gone = {m.member_id for m in leavers}
        adults = [m for m in ok if m.relation != "child" and m.member_id not in gone]
        qualified = await self.step("juror qualifications", [
            QualifyJuror(member_id=m.member_id, exam_score=rng.choice((90, 90, 90, 70)),
                         qualified_on=QUALIFIED_ON) for m in adults])
        jurors = [m for m, o in zip(adults, qualified, strict=True) if o[0].type == "jury.JurorQualified"]

        await self.must("claims filed", [s[0] for s in steps])
        await self.must("investigations", [s[1] for s in steps])
        case = {role: s for s, role in zip(steps, CASE_ROLES, strict=True) if role != "approved"}
        appealed = case["appealed"][0].case_id  # type: ignore[attr-defined]
        disputed = case["disputed"][0].case_id  # type: ignore[attr-defined]
        reviews: list[Command] = []
        for s, role in zip(steps, CASE_ROLES, strict=True):
            if role == "withdrawn":
                reviews.append(WithdrawClaim(case_id=s[0].case_id,  # type: ignore[attr-defined]
                                             reason="recovered", withdrawn_on=QUALIFIED_ON))
            elif role == "appealed":
                reviews.append(s[2].model_copy(update={
                    "approved": False, "reason_code": "RECORDS_INCONSISTENT",
                    "note": "admission date differs"}))
            else:
                reviews.append(s[2])
        await self.must("reviews", reviews)
        await self.must("final reviews and appeal", [
            *(s[3] for s, role in zip(steps, CASE_ROLES, strict=True) if role in ("approved", "disputed")),
            AppealClaim(case_id=appealed, reason="hospital corrected the record",
                        appealed_on=date(2020, 6, 2))])

        panel = await self._wait_event("jury.PanelDrawn", appealed)
        closes = datetime.fromisoformat(panel.data["voting_closes_at"])
        await self.must("panel votes", [
            CastVote(case_id=appealed, juror_id=j, approve=i < 8,
                     cast_at=closes - timedelta(hours=1))
            for i, j in enumerate(panel.data["juror_ids"])])
        await self.must("panel verdict", [CloseVoting(case_id=appealed,
                                                      closed_at=closes + timedelta(hours=1))])
        await self.db.wait("SELECT count(*) FROM publicity.cases WHERE round_date IS NULL", 4,
                           timeout=cfg.timeout, what="publicity to hold four cases")

        await self.must("round opening", [OpenPublicityRound(round_date=ROUND)])
        claimant = case["disputed"][0].member_id  # type: ignore[attr-defined]
        household = {m.member_id for m in members
                     if m.payer_id == by_id[claimant].payer_id} | {claimant}
        objector = rng.choice([m for m in jurors if m.member_id not in household | claimants])
        await self.must("objection", [FileObjection(
            objection_id=f"{cfg.tag}-obj-1", case_id=disputed, member_id=objector.member_id,
            reason="the diagnosis predates joining", filed_on=ROUND + timedelta(days=1))])
        await self.db.wait("SELECT count(*) FROM jury.objectors", 1, timeout=cfg.timeout,
                           what="jury to record the objection")
        await self.must("round closing", [ClosePublicityRound(round_date=ROUND)])

        opened = await self._wait_event("jury.JuryCaseOpened", disputed, origin="dispute")
        closes = datetime.fromisoformat(opened.data["voting_closes_at"])
        # Not the claimants: a member's coverage ends once a benefit is paid, and when the
        # jury hears of it is a matter of timing.
        voters = [m for m in jurors if m.member_id not in
                  household | claimants | {objector.member_id}]
        await self.must("open votes", [
            CastVote(case_id=disputed, juror_id=m.member_id, approve=rng.random() < 0.6,
                     cast_at=closes - timedelta(hours=2))
            for m in rng.sample(voters, min(7, len(voters)))])
        (inconclusive,) = await self.must("open verdict", [CloseVoting(
            case_id=disputed, closed_at=closes + timedelta(hours=1))])
        assert inconclusive[0].type == "jury.VotingInconclusive", inconclusive

        approved = [c for c, r in roles.items() if r in ("approved", "appealed")]
        await self.client.wait_until(
            lambda: {e.subject for e in self.client.of_type("claims.CaseApproved")}
            >= set(approved), timeout=cfg.timeout, what="the cases approved")
        await self.db.wait("SELECT count(*) FROM billing.approved_cases", len(approved),
                           timeout=cfg.timeout, what="billing to hold the approved cases")
        await self.step("sharing run", [RunSharingPeriod(sharing_date=SHARING)])
        (run_id,) = self.last_ids
        events = await wait_sharing_run(self.client, run_id, timeout=cfg.timeout)
        if not any(e.type == "billing.SharingPeriodCompleted" for e in events):
            raise AssertionError(f"the sharing run did not complete: {events[-1].data}")
        return FlowResult(dict(self.sent), roles, run_id, events)


#: The services at work in each step (its commands' service and those reading its events).
BUSY = {
    "payer joins": SERVICES, "family joins": SERVICES, "leaves": SERVICES,
    "juror qualifications": ("jury",), "claims filed": ("claims",),
    "investigations": ("claims",), "reviews": ("claims", "publicity", "jury"),
    "final reviews and appeal": ("claims", "publicity", "jury"), "panel votes": ("jury",),
    "panel verdict": ("jury", "claims", "publicity"),
    "round opening": ("publicity", "claims"), "objection": ("publicity", "jury"),
    "round closing": ("publicity", "claims", "jury", "billing"), "open votes": ("jury",),
    "open verdict": ("jury", "claims"), "sharing run": ("billing", "publicity", "claims"),
}


class KillPlan:
    """Where the SIGKILLs of a seeded run fall: ``rounds`` kills, the victims taken in turn
    from a shuffled list of the five services (so 5 rounds kill each service once), each
    at a step drawn at random among those its victim works in, after that step's commands
    were sent. Half the kills (drawn at random) wait for the victim to be inside a
    transaction (a backend of it, by application_name, active or idle in transaction: a
    consumed batch or a handler at work), the others come after a random delay of 0-0.3 s,
    which also lands between a commit and the offset commit or the relay's send and delete.
    The victim is restarted right away."""

    BUSY_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = $1 AND state IN ('active', 'idle in transaction') "
                "AND pid <> pg_backend_pid()")

    def __init__(self, processes: Processes, seed: int, rounds: int,
                 say: Callable[[str], None] = print) -> None:
        rng = random.Random(seed * 7919 + rounds)
        victims = rng.sample(SERVICES, len(SERVICES))
        self.processes = processes
        self.say = say
        #: step -> [(victim, delay in seconds, or None: when it is inside a transaction)]
        self.at: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for r in range(rounds):
            victim = victims[r % len(victims)]
            step = rng.choice([s for s in STEPS if victim in BUSY[s]])
            when = None if rng.random() < 0.5 else round(rng.uniform(0.0, 0.3), 2)
            self.at[step].append((victim, when))
        self.done: list[tuple[str, str, str]] = []
        self._conn: asyncpg.Connection | None = None

    async def _in_transaction(self, service: str, timeout: float = 3.0) -> bool:
        if self._conn is None:
            self._conn = await asyncpg.connect(self.processes.platform.database_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self._conn.fetchval(self.BUSY_SQL, service):
                return True
            await asyncio.sleep(0.005)
        return False

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def __call__(self, step: str) -> None:
        for service, when in self.at.get(step, ()):
            if self.processes.kills[service]:
                # Killed before: let it come back first, so this kill hits a service at
                # work rather than one still starting.
                await self.processes.wait_healthy({service: self.processes.platform.ports[
                    service]})
            if when is None:
                point = ("inside a transaction" if await self._in_transaction(service)
                         else "idle (no transaction within 3 s)")
            else:
                await asyncio.sleep(when)
                point = f"{when:.2f}s in"
            self.processes.kill(service)
            self.processes.restart(service)
            self.done.append((step, service, point))
            self.say(f"  SIGKILL {service} during '{step}', {point}; restarted")
