"""The jury service's handlers through the real dispatcher on a real Postgres: the batch vote
path (duplicates, repeat voters, counters equal to the stored votes), closing, panels,
disputes that arrive before their claim. Jury's schema name is fixed, so this module has a
database of its own."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord
from testkit import service_database
from prometheus_client import CollectorRegistry

from jury.domain.rules import PLAN_TIME
from jury.handlers import router
from mutualaid.client import command_event
from mutualaid.contracts import Command, Event
from mutualaid.contracts.claims import CaseRejected, ClaimAppealed, ClaimFiled
from mutualaid.contracts.envelope import encode_event, now_iso
from mutualaid.contracts.jury import CastVote, CloseVoting, QualifyJuror
from mutualaid.contracts.publicity import CaseDisputed, ObjectionFiled
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime import outbox
from mutualaid.runtime.dispatch import Dispatcher
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.resources import Resources

pytestmark = [pytest.mark.handler, pytest.mark.integration]

ON = date(2024, 5, 10)
OPENS = datetime(2024, 5, 10, tzinfo=PLAN_TIME)
DEADLINE = OPENS + timedelta(hours=72)
DURING = OPENS + timedelta(hours=5)
_offsets = itertools.count()


@pytest.fixture(scope="module")
async def jpool() -> AsyncIterator[asyncpg.Pool]:
    async with service_database("jury") as sdb:
        yield sdb.pool


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(service="jury", schema="jury", router=router,
                      metrics=RuntimeMetrics.create(CollectorRegistry()),
                      resources=Resources(load_rulebook(), None))


def record(value: bytes, topic: str) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=next(_offsets), timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value), headers=())


def cmd(command: Command, id: str | None = None) -> ConsumerRecord:
    return record(command_event(command, source="test", id=id), "jury.commands")


def evt(event: Event) -> ConsumerRecord:
    return record(encode_event(event, source="test", id=str(uuid.uuid4()), time=now_iso(),
                               correlationid=None), event.topic())


async def feed(pool: asyncpg.Pool, d: Dispatcher, records: Sequence[ConsumerRecord]
               ) -> list[dict]:
    """One consumed batch; returns the jury.events it staged (and clears the outbox)."""
    async with pool.acquire() as conn, conn.transaction():
        await d.process_in(conn, records)
        rows = await conn.fetch(f"DELETE FROM jury.outbox RETURNING {outbox.COLUMNS}")
    return [orjson.loads(r.value) for r in outbox.unpack(sorted(rows, key=lambda r: r["id"]))
            if r.topic == "jury.events"]


def kinds(events: list[dict]) -> list[str]:
    return [e["type"].split(".", 1)[1] + (f":{e['data']['reason_code']}"
                                          if e["type"] == "jury.CommandRejected" else "")
            for e in events]


async def add_jurors(pool: asyncpg.Pool, ids: Sequence[str], payer: str | None = None) -> None:
    """Members and qualified jurors written directly: QualifyJuror has tests of its own."""
    await pool.copy_records_to_table("members", schema_name="jury", records=[
        (j, payer or j, date(1980, 1, 1), date(2020, 1, 1), True) for j in ids])
    await pool.copy_records_to_table("jurors", schema_name="jury",
                                     records=[(j, 90, date(2021, 1, 1)) for j in ids])


def claim_filed(case_id: str, member: str = "m-1", payer: str = "p-1",
                plan: str = "critical_illness") -> ClaimFiled:
    return ClaimFiled(case_id=case_id, member_id=member, payer_id=payer, plan=plan,
                      illness_code="x", diagnosed_on=date(2024, 1, 1), is_accident=False,
                      hospital="h", age_at_diagnosis=40, benefit_fen=1, rule_version="v")


def disputed(case_id: str) -> CaseDisputed:
    return CaseDisputed(case_id=case_id, round_date=ON, objections=1, disputed_on=ON)


def ballot(case_id: str, juror_id: str, approve: bool = True) -> CastVote:
    return CastVote(case_id=case_id, juror_id=juror_id, approve=approve, cast_at=DURING)


async def counters(pool: asyncpg.Pool, case_id: str) -> tuple[int, int, int, int]:
    tally = await pool.fetchrow("SELECT sum(votes_for)::int, sum(votes_against)::int "
                                "FROM jury.tallies WHERE case_id=$1", case_id)
    rows = await pool.fetchrow("SELECT count(*) FILTER (WHERE approve)::int, "
                               "count(*) FILTER (WHERE NOT approve)::int "
                               "FROM jury.votes WHERE case_id=$1", case_id)
    return tally[0] or 0, tally[1] or 0, rows[0], rows[1]


# -- open mode, the batch vote path ----------------------------------------------------------

async def test_the_batch_vote_path_dedupes_and_keeps_counters_equal_to_the_votes(
        jpool: asyncpg.Pool, dispatcher: Dispatcher) -> None:
    jurors = [f"v-{i:04d}" for i in range(1200)]
    await add_jurors(jpool, jurors)
    await add_jurors(jpool, ["same-payer"], payer="p-1")
    assert kinds(await feed(jpool, dispatcher, [evt(claim_filed("c-open"))])) == []
    await feed(jpool, dispatcher, [evt(ObjectionFiled(objection_id="o", case_id="c-open",
                                                      member_id="v-0007", reason="r",
                                                      filed_on=ON))])
    assert kinds(await feed(jpool, dispatcher, [evt(disputed("c-open"))])) == ["JuryCaseOpened"]

    first = [cmd(ballot("c-open", "v-0000"), id="dup"), cmd(ballot("c-open", "v-0000"), id="dup"),
             cmd(ballot("c-open", "v-0001", False)),
             cmd(ballot("c-open", "v-0001", True)),  # the same juror again in the run
             cmd(ballot("c-open", "v-0007")),  # an objector
             cmd(ballot("c-open", "same-payer")),  # paid for by the claimant's payer
             cmd(ballot("c-open", "m-1")),  # the claimant (not even a juror)
             cmd(ballot("c-open", "nobody")),
             cmd(ballot("c-nope", "v-0002")),
             cmd(ballot("c-open", "v-0002"))]
    out = await feed(jpool, dispatcher, first)
    assert kinds(out) == ["VoteCast", "VoteCast", "CommandRejected:ALREADY_VOTED",
                          "CommandRejected:EXCLUDED", "CommandRejected:EXCLUDED",
                          "CommandRejected:NOT_A_JUROR", "CommandRejected:NOT_A_JUROR",
                          "CommandRejected:NO_OPEN_JURY_CASE", "VoteCast"]
    assert await counters(jpool, "c-open") == (2, 1, 2, 1)

    # a later run: repeat voters are refused against the stored votes
    second = [cmd(ballot("c-open", j, i % 3 != 0)) for i, j in enumerate(jurors[:1100])]
    out = await feed(jpool, dispatcher, second)
    assert kinds(out).count("CommandRejected:ALREADY_VOTED") == 3  # v-0000..2
    assert kinds(out).count("CommandRejected:EXCLUDED") == 1  # v-0007
    assert kinds(out).count("VoteCast") == 1096
    vf, va, rows_for, rows_against = await counters(jpool, "c-open")
    assert (vf, va) == (rows_for, rows_against) and vf + va == 1099

    # closing: too early, then a verdict read from the counters, then idempotent
    early = await feed(jpool, dispatcher, [cmd(CloseVoting(
        case_id="c-open", closed_at=DEADLINE - timedelta(seconds=1)))])
    assert kinds(early) == ["CommandRejected:VOTING_STILL_OPEN"]
    verdict = await feed(jpool, dispatcher, [cmd(CloseVoting(case_id="c-open",
                                                             closed_at=DEADLINE))])
    assert kinds(verdict) == ["JuryVerdict"]
    data = verdict[0]["data"]
    assert (data["votes_for"], data["votes_against"], data["mode"], data["origin"]) == \
        (vf, va, "open", "dispute")
    assert data["approved"] == (vf * 2 > vf + va)
    again = await feed(jpool, dispatcher, [cmd(CloseVoting(case_id="c-open",
                                                           closed_at=DEADLINE))])
    assert kinds(again) == ["CommandRejected:ALREADY_APPLIED"]
    late = await feed(jpool, dispatcher, [cmd(ballot("c-open", "v-1150"))])
    assert kinds(late) == ["CommandRejected:NO_OPEN_JURY_CASE"]


async def test_an_inconclusive_open_vote_reopens_for_another_window(
        jpool: asyncpg.Pool, dispatcher: Dispatcher) -> None:
    await add_jurors(jpool, ["w-1", "w-2"])
    await feed(jpool, dispatcher, [evt(claim_filed("c-few"))])
    await feed(jpool, dispatcher, [evt(disputed("c-few"))])
    await feed(jpool, dispatcher, [cmd(ballot("c-few", "w-1"))])
    out = await feed(jpool, dispatcher, [cmd(CloseVoting(case_id="c-few", closed_at=DEADLINE))])
    assert kinds(out) == ["VotingInconclusive"]
    new_deadline = DEADLINE + timedelta(hours=72)
    assert datetime.fromisoformat(out[0]["data"]["voting_closes_at"]) == new_deadline
    late = CastVote(case_id="c-few", juror_id="w-2", approve=False,
                    cast_at=DEADLINE + timedelta(hours=1))
    out = await feed(jpool, dispatcher, [cmd(late), cmd(ballot("c-few", "w-1"))])
    assert kinds(out) == ["VoteCast", "CommandRejected:ALREADY_VOTED"]
    assert await counters(jpool, "c-few") == (1, 1, 1, 1)


async def test_a_dispute_before_its_claim_waits_for_the_claim(
        jpool: asyncpg.Pool, dispatcher: Dispatcher) -> None:
    assert kinds(await feed(jpool, dispatcher, [evt(disputed("c-held"))])) == []
    assert await jpool.fetchval("SELECT count(*) FROM jury.cases WHERE case_id='c-held'") == 0
    out = await feed(jpool, dispatcher, [evt(claim_filed("c-held", plan="elderly_cancer"))])
    assert kinds(out) == ["JuryCaseOpened"]
    row = await jpool.fetchrow("SELECT plan, claimant_id FROM jury.cases WHERE case_id='c-held'")
    assert tuple(row) == ("elderly_cancer", "m-1")
    # a redelivered dispute does not open a second sitting
    assert kinds(await feed(jpool, dispatcher, [evt(disputed("c-held"))])) == []


async def test_qualify_juror_and_a_fraud_record(jpool: asyncpg.Pool,
                                                dispatcher: Dispatcher) -> None:
    await jpool.execute("INSERT INTO jury.members VALUES ('q-1','q-1','1980-01-01',"
                        "'2020-01-01',true), ('q-2','q-2','1980-01-01','2020-01-01',true)")
    await feed(jpool, dispatcher, [evt(CaseRejected(case_id="c-f", member_id="q-2",
                                                    reason_code="FRAUD", message="m",
                                                    rejected_on=ON))])
    out = await feed(jpool, dispatcher, [
        cmd(QualifyJuror(member_id="q-1", exam_score=80, qualified_on=ON)),
        cmd(QualifyJuror(member_id="q-2", exam_score=95, qualified_on=ON)),
        cmd(QualifyJuror(member_id="q-3", exam_score=95, qualified_on=ON))])
    assert kinds(out) == ["JurorQualified", "CommandRejected:FRAUD_RECORD",
                          "CommandRejected:NOT_AN_ACTIVE_MEMBER"]


# -- panel mode ------------------------------------------------------------------------------

async def test_an_appeal_is_judged_by_a_drawn_panel_redrawn_without_quorum(
        jpool: asyncpg.Pool, dispatcher: Dispatcher) -> None:
    pool_ids = [f"pj-{i:02d}" for i in range(20)]
    await add_jurors(jpool, pool_ids)
    appeal = ClaimAppealed(case_id="c-panel", member_id="a-1", payer_id="a-1",
                           plan="critical_illness", reason="r", appealed_on=ON)
    out = await feed(jpool, dispatcher, [evt(appeal)])
    assert kinds(out) == ["JuryCaseOpened", "PanelDrawn"]
    assert out[0]["data"]["mode"] == "panel" and out[0]["data"]["origin"] == "appeal"
    drawn = out[1]["data"]
    first_panel = drawn["juror_ids"]
    assert drawn["draw_round"] == 1 and len(first_panel) == 11
    outsider = next(j for j in pool_ids if j not in first_panel)

    voters = first_panel[:5]  # 5 of 11 misses the quorum of 2/3
    out = await feed(jpool, dispatcher, [cmd(ballot("c-panel", j)) for j in voters]
                     + [cmd(ballot("c-panel", outsider))])
    assert kinds(out) == ["VoteCast"] * 5 + ["CommandRejected:NOT_ON_PANEL"]

    out = await feed(jpool, dispatcher, [cmd(CloseVoting(case_id="c-panel",
                                                         closed_at=DEADLINE))])
    assert kinds(out) == ["VotingInconclusive", "PanelDrawn"]
    assert out[0]["data"]["required_votes"] == 8
    second = out[1]["data"]
    assert second["draw_round"] == 2 and second["kept_juror_ids"] == sorted(voters)
    assert len(second["juror_ids"]) == 11
    new = [j for j in second["juror_ids"] if j not in voters]
    assert len(new) == 6 and not set(new) & set(first_panel)
    replaced = next(j for j in first_panel if j not in voters)
    out = await feed(jpool, dispatcher, [cmd(ballot("c-panel", replaced))]
                     + [cmd(ballot("c-panel", j, False)) for j in new[:3]])
    assert kinds(out) == ["CommandRejected:NOT_ON_PANEL"] + ["VoteCast"] * 3

    out = await feed(jpool, dispatcher, [cmd(CloseVoting(
        case_id="c-panel", closed_at=DEADLINE + timedelta(hours=72)))])
    assert kinds(out) == ["JuryVerdict"]
    verdict = out[0]["data"]
    assert (verdict["votes_for"], verdict["votes_against"], verdict["approved"],
            verdict["draw_round"], verdict["mode"]) == (5, 3, True, 2, "panel")
    rounds = await jpool.fetch("SELECT draw_round, votes_for, votes_against FROM jury.tallies "
                               "WHERE case_id='c-panel' ORDER BY draw_round")
    assert [tuple(r) for r in rounds] == [(1, 5, 0), (2, 0, 3)]


async def test_a_panel_with_nobody_to_draw_waits_and_is_drawn_at_a_later_close(
        jpool: asyncpg.Pool, dispatcher: Dispatcher) -> None:
    # Every juror in this database is paid for by the claimant's payer, or already judged
    # other cases: use a payer shared with all of them so nobody is eligible.
    appeal = ClaimAppealed(case_id="c-wait", member_id="zz-1", payer_id="p-all",
                           plan="critical_illness", reason="r", appealed_on=ON)
    await jpool.execute("UPDATE jury.members SET payer_id='p-all'")
    try:
        out = await feed(jpool, dispatcher, [evt(appeal)])
        assert kinds(out) == ["JuryCaseOpened"]
        out = await feed(jpool, dispatcher, [cmd(CloseVoting(case_id="c-wait",
                                                             closed_at=DEADLINE))])
        assert kinds(out) == ["VotingInconclusive"]
    finally:
        await jpool.execute("UPDATE jury.members SET payer_id=member_id")
    out = await feed(jpool, dispatcher, [cmd(CloseVoting(
        case_id="c-wait", closed_at=DEADLINE + timedelta(hours=72)))])
    assert kinds(out) == ["VotingInconclusive", "PanelDrawn"]
    assert out[1]["data"]["draw_round"] == 1 and len(out[1]["data"]["juror_ids"]) == 11
