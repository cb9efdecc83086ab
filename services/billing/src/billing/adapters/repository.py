"""asyncpg access to billing's own schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from billing.domain.arrears import Debit, DebitStatus
from billing.domain.sharing import ApprovedCase, bucket_of
from mutualaid.contracts.billing import PaymentInstruction
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.membership import MemberJoined
from mutualaid.errors import RetryLater


# Every roll change takes the next roll sequence number: a sharing run reads the roll as of
# the number it started at (adapters/runs.py).

async def add_roll_members(conn: asyncpg.Connection, events: Sequence[MemberJoined]) -> None:
    await conn.execute(
        "INSERT INTO billing.roll_members (member_id, payer_id, plan, joined_on, bucket) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::smallint[]) "
        "ON CONFLICT (bucket, member_id) DO NOTHING",
        [e.member_id for e in events], [e.payer_id for e in events], [e.plan for e in events],
        [e.joined_on for e in events], [bucket_of(e.payer_id) for e in events])


async def remove_roll_members(conn: asyncpg.Connection,
                              exits: Sequence[tuple[str, str, date]]) -> None:
    """``(member_id, payer_id, exit date)``: exits are final, a member's first exit counts
    and later copies change nothing. The payer's bucket finds the row's partition."""
    await conn.execute(
        "UPDATE billing.roll_members r SET left_on=x.on_, left_seq=nextval('billing.roll_seq') "
        "FROM (SELECT DISTINCT ON (id) id, b, on_ FROM unnest($1::text[], $2::smallint[], "
        "$3::date[]) WITH ORDINALITY AS u(id, b, on_, n) ORDER BY id, n) x "
        "WHERE r.bucket = x.b AND r.member_id = x.id AND r.left_on IS NULL",
        [m for m, _, _ in exits], [bucket_of(p) for _, p, _ in exits],
        [d for _, _, d in exits])


async def transfer_roll_member(conn: asyncpg.Connection, member_id: str, payer_id: str,
                               plan: str) -> None:
    await conn.execute("UPDATE billing.roll_members SET prev_plan=plan, plan=$3, "
                       "plan_seq=nextval('billing.roll_seq') WHERE bucket=$1 AND member_id=$2 "
                       "AND plan <> $3", bucket_of(payer_id), member_id, plan)


async def add_case(conn: asyncpg.Connection, e: CaseApproved) -> None:
    await conn.execute("INSERT INTO billing.approved_cases VALUES ($1,$2,$3,$4,$5,$6,NULL) "
                       "ON CONFLICT (case_id) DO NOTHING", e.case_id, e.plan, e.member_id,
                       e.payer_id, e.benefit_fen, e.approved_on)


async def unshared_cases(conn: asyncpg.Connection, plan: str, by: date) -> list[ApprovedCase]:
    rows = await conn.fetch(
        "SELECT case_id, member_id, benefit_fen FROM billing.approved_cases WHERE plan=$1 "
        "AND period_id IS NULL AND approved_on <= $2 ORDER BY case_id FOR UPDATE", plan, by)
    return [ApprovedCase(*r.values()) for r in rows]


async def save_credits(conn: asyncpg.Connection, credits: Sequence[PaymentInstruction]
                       ) -> None:
    await conn.copy_records_to_table(
        "instructions", schema_name="billing",
        columns=["instruction_id", "period_id", "kind", "account_id", "case_id", "amount_fen"],
        records=[(i.instruction_id, i.period_id, i.kind, i.account_id, i.case_id, i.amount_fen)
                 for i in credits])


@dataclass(frozen=True, slots=True)
class InstructionRow:
    instruction_id: str
    period_id: str
    plan: str
    sharing_date: date
    kind: str
    account_id: str
    amount_fen: int
    status: str


async def credit(conn: asyncpg.Connection, instruction_id: str) -> InstructionRow | None:
    row = await conn.fetchrow(
        "SELECT i.instruction_id, i.period_id, p.plan, p.sharing_date, i.kind, i.account_id, "
        "i.amount_fen, i.status FROM billing.instructions i JOIN billing.periods p "
        "USING (period_id) WHERE i.instruction_id=$1 FOR UPDATE OF i", instruction_id)
    return InstructionRow(*row.values()) if row else None


async def debit(conn: asyncpg.Connection, instruction_id: str, period_id: str, payer_id: str
                ) -> InstructionRow | None:
    """A debit of a completed period, from the payer's charges (debits are not stored one
    by one); its status is that of the result recorded for it, if any."""
    period = await conn.fetchrow(
        "SELECT plan, sharing_date, status FROM billing.periods WHERE period_id=$1 "
        "AND NOT dry_run", period_id)
    if period is None:
        return None
    if period["status"] == "running":
        # Workers send debits while the period runs, and a fast payment system can answer
        # before the shard's charges commit; the payer index is built when the last shard
        # is in. Results wait for the period rather than being dropped or looked up without
        # the index.
        raise RetryLater(f"{instruction_id}: its period is still running")
    amount = await conn.fetchval("SELECT sum(member_pays_fen) FROM billing.charges "
                                 "WHERE period_id=$1 AND payer_id=$2", period_id, payer_id)
    if not amount:
        return None
    status = await conn.fetchval("SELECT status FROM billing.debit_results "
                                 "WHERE instruction_id=$1 FOR UPDATE", instruction_id)
    return InstructionRow(instruction_id, period_id, period["plan"], period["sharing_date"],
                          "debit", payer_id, int(amount), status or DebitStatus.SENT.value)


async def record_result(conn: asyncpg.Connection, row: InstructionRow, status: DebitStatus,
                        at: datetime, reason: str | None = None) -> None:
    if row.kind == "credit":
        await conn.execute("UPDATE billing.instructions SET status=$2, result_at=$3, "
                           "failure_reason=$4 WHERE instruction_id=$1",
                           row.instruction_id, status.value, at, reason)
        return
    await conn.execute(
        "INSERT INTO billing.debit_results (instruction_id, period_id, payer_id, amount_fen, "
        "status, result_at, failure_reason) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        row.instruction_id, row.period_id, row.account_id, row.amount_fen, status.value, at,
        reason)


async def payer_debits(conn: asyncpg.Connection, payer_id: str) -> list[Debit]:
    """The payer's debits that have a result: a debit still waiting for one neither extends
    nor breaks a run of failures."""
    rows = await conn.fetch(
        "SELECT d.period_id, p.sharing_date, d.status, d.settled_on IS NOT NULL AS settled "
        "FROM billing.debit_results d JOIN billing.periods p USING (period_id) "
        "WHERE d.payer_id=$1", payer_id)
    return [Debit(r["period_id"], r["sharing_date"], DebitStatus(r["status"]), r["settled"])
            for r in rows]


async def open_arrears(conn: asyncpg.Connection, payer_id: str) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(
        "SELECT instruction_id, period_id, amount_fen FROM billing.debit_results "
        "WHERE payer_id=$1 AND status='failed' AND settled_on IS NULL "
        "ORDER BY period_id FOR UPDATE", payer_id)
    return [(r["instruction_id"], r["period_id"], r["amount_fen"]) for r in rows]


async def settle(conn: asyncpg.Connection, instruction_ids: list[str], on: date) -> None:
    await conn.execute("UPDATE billing.debit_results SET settled_on=$2 "
                       "WHERE instruction_id = ANY($1::text[])", instruction_ids, on)


async def period_cases(conn: asyncpg.Connection, period_id: str) -> list[ApprovedCase]:
    rows = await conn.fetch("SELECT case_id, member_id, benefit_fen FROM billing.approved_cases "
                            "WHERE period_id=$1 ORDER BY case_id", period_id)
    return [ApprovedCase(*r.values()) for r in rows]
