"""SIGKILL at random points of the full flow (issue 7, faults): join, leave, jurors, five
claims through review, appeal and a drawn panel, a publicity round with a dispute and an
open jury, and the sharing run, while every service (billing included, in its default
``all`` role) is killed without warning and restarted, again and again over a seeded run.

Afterwards every command has exactly one outcome, counted from the topics; the run read
exactly the events a fault-free run of the same seeded flow (same commands under the same
ids) read, each once, with the same data (copies of one event, which the relay may send
again after a crash, count once; see faultkit.catalogue_diff); every case ends in the state
the scenario defines and the fault-free run reached; billing's instructions have the same
ids and amounts; the money equation holds, and the stored charges say the same.

``FAULT_ROUNDS`` (default 10: each service killed twice) and ``FAULT_SEED`` (default 7)
size it; e.g. ``FAULT_ROUNDS=60 FAULT_SEED=3 make test-faults``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from devstack.broker import free_port, start_broker
from devstack.platform import SERVICES
from faultkit import (
    Database, Flow, FlowConfig, FlowResult, KillPlan, Processes, catalogue, catalogue_diff,
    fault_rounds, fault_seed, log_count, outcome_problems, settle)

from testkit import running_platform

from mutualaid.client import PlatformClient

SEED = fault_seed(7)
ROUNDS = fault_rounds(10)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300 + 15 * ROUNDS)]
CONFIG = FlowConfig(tag="flt", seed=SEED, members=120)


@dataclass
class Run:
    flow: FlowResult
    events: dict[str, tuple[object, ...]]
    cases: dict[str, str]
    charges: tuple[int, int, int, int]
    copies: int
    seconds: float


@asynccontextmanager
async def platform_for(log_dir: Path) -> AsyncIterator[tuple[PlatformClient, Database,
                                                              Processes]]:
    """A private broker, a fresh database and the five services, for one run."""
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(free_port(), run_dir=log_dir)
    try:
        with running_platform(broker.bootstrap, log_dir) as platform:
            async with PlatformClient(broker.bootstrap, source="tests/faults") as client:
                procs = Processes(platform, log_dir)
                yield client, Database(platform.database_url), procs
    finally:
        broker.stop()


async def run_flow(log_dir: Path, *, rounds: int) -> tuple[Run, Processes, KillPlan | None]:
    async with platform_for(log_dir) as (client, db, procs):
        started = time.monotonic()
        plan = KillPlan(procs, SEED, rounds) if rounds else None
        try:
            flow = await Flow(client, db, CONFIG, fault=plan, say=print).run()
        finally:
            if plan is not None:
                await plan.close()
        if plan is not None:
            # The flow can end before a restarted service has read all it must; the
            # comparison below waits for it.
            await procs.wait_healthy()
        expected = Counter(REFERENCE.values())
        settled = await settle(client, db, timeout=90, want=lambda: not (
            expected - Counter(catalogue(client).values())))
        print("settled" if settled else "did not settle in time")
        procs.check_running()
        cases = {r["case_id"]: r["state"] for r in await db.fetch(
            "SELECT case_id, state FROM claims.cases")}
        charges = await db.fetch(
            "SELECT count(*) AS n, count(DISTINCT (period_id, member_id)) AS members, "
            "COALESCE(sum(member_pays_fen), 0) AS pays, "
            "COALESCE(sum(share_fen - member_pays_fen), 0) AS subsidy FROM billing.charges")
        (c,) = charges
        problems = outcome_problems(client, flow.sent)
        assert not problems, problems[:20]
        assert not client.dead_letters, [d.headers for d in client.dead_letters][:5]
        events = catalogue(client)
        copies = len(client.events) - len(events)
        return (Run(flow, events, cases, (c["n"], c["members"], c["pays"], c["subsidy"]),
                    copies, time.monotonic() - started), procs, plan)


#: The fault-free run's events, once it has run: the faulted run waits for them.
REFERENCE: dict[str, tuple[object, ...]] = {}


@pytest.fixture(scope="module")
async def reference(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run, _, _ = await run_flow(tmp_path_factory.mktemp("faults-reference"), rounds=0)
    REFERENCE.update(run.events)
    print(f"fault-free run: {len(run.flow.sent)} commands, {len(run.events)} events, "
          f"{run.seconds:.0f}s")
    return run


def money_equation(run: Run) -> None:
    """Per period: member debits + subsidy = benefits + fee, credits = benefits, and the
    stored charges say the same (each instruction counted once: a batch sent again after a
    crash is a copy under the same ids)."""
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for instruction_id, (amount, _) in instructions(run).items():
        period = instruction_id.rsplit("/", 2)[0]
        (debits if "/debit/" in instruction_id else credits)[period] += amount
    notices = [e.data for e in run.flow.run_events if e.type == "billing.SharingAnnounced"]
    assert notices
    for n in notices:
        assert debits[n["period_id"]] + n["subsidy_fen"] == n["benefits_fen"] + n["fee_fen"]
        assert credits[n["period_id"]] == n["benefits_fen"]
        assert debits[n["period_id"]] == n["member_debits_fen"]
    n_members, distinct, pays, subsidy = run.charges
    assert n_members == distinct == sum(n["members_sharing"] for n in notices)
    assert pays == sum(n["member_debits_fen"] for n in notices)
    assert pays + subsidy == sum(n["benefits_fen"] + n["fee_fen"] for n in notices)


def instructions(run: Run) -> dict[str, tuple[int, object]]:
    out: dict[str, tuple[int, object]] = {}
    for e in run.flow.run_events:
        if e.type == "billing.PaymentInstructionBatch":
            for i in e.data["instructions"]:
                value = (i["amount_fen"], [(ln["member_id"], ln["amount_fen"])
                                           for ln in i["lines"]])
                assert out.setdefault(i["instruction_id"], value) == value
    return out


async def test_the_fault_free_flow_ends_as_the_scenario_says(reference: Run) -> None:
    assert reference.cases == reference.flow.expected_states
    money_equation(reference)
    assert any(i.split("/")[2] == "credit" for i in instructions(reference))


async def test_sigkill_of_every_service_at_random_points_changes_no_outcome(
        reference: Run, tmp_path: Path) -> None:
    print(f"FAULT_SEED={SEED} FAULT_ROUNDS={ROUNDS}")
    run, procs, plan = await run_flow(tmp_path / "faulted", rounds=ROUNDS)
    assert plan is not None
    print(f"faulted run: {sum(procs.kills.values())} kills {dict(procs.kills)}, "
          f"{len(run.flow.sent)} commands, {len(run.events)} events "
          f"({run.copies} redelivered copies), {run.seconds:.0f}s; inbox skipped "
          f"{log_count(tmp_path / 'faulted', 'duplicate skipped')} redelivered messages")
    if ROUNDS >= len(SERVICES):
        assert set(procs.kills) == set(SERVICES)
    # The same commands under the same ids, each with exactly one outcome (checked in
    # run_flow) and the same one as without faults: the same events, none lost or doubled.
    assert run.flow.sent == reference.flow.sent
    diff = catalogue_diff(reference.events, run.events)
    assert not diff, "\n".join(diff[:40])
    assert run.cases == reference.cases == run.flow.expected_states
    assert instructions(run) == instructions(reference)
    assert run.charges == reference.charges
    money_equation(run)
