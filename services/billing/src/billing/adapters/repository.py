"""asyncpg access to billing's own schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from billing.domain.arrears import Debit, DebitStatus
from billing.domain.sharing import ApprovedCase, PeriodResult, Sharer
from mutualaid.contracts.billing import PaymentInstruction
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.membership import MemberJoined


async def add_roll_member(conn: asyncpg.Connection, e: MemberJoined) -> None:
    await conn.execute("INSERT INTO billing.roll_members VALUES ($1,$2,$3,$4,NULL) "
                       "ON CONFLICT (member_id) DO NOTHING",
                       e.member_id, e.payer_id, e.plan, e.joined_on)


async def remove_roll_member(conn: asyncpg.Connection, member_id: str, on: date) -> None:
    await conn.execute("UPDATE billing.roll_members SET left_on=$2 WHERE member_id=$1 "
                       "AND left_on IS NULL", member_id, on)


async def transfer_roll_member(conn: asyncpg.Connection, member_id: str, plan: str) -> None:
    await conn.execute("UPDATE billing.roll_members SET plan=$2 WHERE member_id=$1",
                       member_id, plan)


async def add_case(conn: asyncpg.Connection, e: CaseApproved) -> None:
    await conn.execute("INSERT INTO billing.approved_cases VALUES ($1,$2,$3,$4,$5,$6,NULL) "
                       "ON CONFLICT (case_id) DO NOTHING", e.case_id, e.plan, e.member_id,
                       e.payer_id, e.benefit_fen, e.approved_on)


async def period_exists(conn: asyncpg.Connection, period_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM billing.periods WHERE period_id=$1)", period_id))


async def unshared_cases(conn: asyncpg.Connection, plan: str, by: date) -> list[ApprovedCase]:
    rows = await conn.fetch(
        "SELECT case_id, member_id, benefit_fen FROM billing.approved_cases WHERE plan=$1 "
        "AND period_id IS NULL AND approved_on <= $2 ORDER BY case_id FOR UPDATE", plan, by)
    return [ApprovedCase(*r.values()) for r in rows]


async def roll(conn: asyncpg.Connection, plan: str, roll_date: date, year: int
               ) -> list[Sharer]:
    rows = await conn.fetch(
        "SELECT r.member_id, r.payer_id, r.joined_on, COALESCE(y.paid, 0) AS paid "
        "FROM billing.roll_members r LEFT JOIN ("
        "  SELECT member_id, sum(member_pays_fen)::bigint AS paid FROM billing.charges "
        "  WHERE sharing_year=$3 GROUP BY member_id) y USING (member_id) "
        "WHERE r.plan=$1 AND r.joined_on < $2 AND (r.left_on IS NULL OR r.left_on > $2) "
        "ORDER BY r.member_id", plan, roll_date, year)
    return [Sharer(*r.values()) for r in rows]


async def save_period(conn: asyncpg.Connection, *, result: PeriodResult, plan: str,
                      sharing_date: date, roll_date: date, rule_version: str,
                      cases: Sequence[ApprovedCase],
                      instructions: Sequence[PaymentInstruction]) -> None:
    await conn.execute(
        "INSERT INTO billing.periods (period_id, plan, sharing_date, roll_date, rule_version, "
        "cases, benefits_fen, fee_fen, members_sharing, member_debits_fen, subsidy_fen) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)", result.period_id, plan, sharing_date,
        roll_date, rule_version, len(cases), result.benefits_fen, result.fee_fen,
        len(result.charges), result.member_debits_fen, result.subsidy_fen)
    await conn.copy_records_to_table(
        "charges", schema_name="billing",
        records=[(result.period_id, sharing_date.year, c.member_id, c.payer_id, c.share_fen,
                  c.member_pays_fen) for c in result.charges])
    await conn.copy_records_to_table(
        "instructions", schema_name="billing",
        columns=["instruction_id", "period_id", "kind", "account_id", "case_id", "amount_fen"],
        records=[(i.instruction_id, i.period_id, i.kind, i.account_id, i.case_id, i.amount_fen)
                 for i in instructions])
    await conn.execute("UPDATE billing.approved_cases SET period_id=$1 WHERE case_id = ANY($2)",
                       result.period_id, [c.case_id for c in cases])


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


async def instruction(conn: asyncpg.Connection, instruction_id: str) -> InstructionRow | None:
    row = await conn.fetchrow(
        "SELECT i.instruction_id, i.period_id, p.plan, p.sharing_date, i.kind, i.account_id, "
        "i.amount_fen, i.status FROM billing.instructions i JOIN billing.periods p "
        "USING (period_id) WHERE i.instruction_id=$1 FOR UPDATE OF i", instruction_id)
    return InstructionRow(*row.values()) if row else None


async def record_result(conn: asyncpg.Connection, instruction_id: str, status: DebitStatus,
                        at: datetime, reason: str | None = None) -> None:
    await conn.execute("UPDATE billing.instructions SET status=$2, result_at=$3, "
                       "failure_reason=$4 WHERE instruction_id=$1",
                       instruction_id, status.value, at, reason)


async def payer_debits(conn: asyncpg.Connection, payer_id: str) -> list[Debit]:
    rows = await conn.fetch(
        "SELECT i.period_id, p.sharing_date, i.status, i.settled_on IS NOT NULL AS settled "
        "FROM billing.instructions i JOIN billing.periods p USING (period_id) "
        "WHERE i.account_id=$1 AND i.kind='debit'", payer_id)
    return [Debit(r["period_id"], r["sharing_date"], DebitStatus(r["status"]), r["settled"])
            for r in rows]


async def open_arrears(conn: asyncpg.Connection, payer_id: str) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(
        "SELECT instruction_id, period_id, amount_fen FROM billing.instructions "
        "WHERE account_id=$1 AND kind='debit' AND status='failed' AND settled_on IS NULL "
        "ORDER BY period_id FOR UPDATE", payer_id)
    return [(r["instruction_id"], r["period_id"], r["amount_fen"]) for r in rows]


async def settle(conn: asyncpg.Connection, instruction_ids: list[str], on: date) -> None:
    await conn.execute("UPDATE billing.instructions SET settled_on=$2 "
                       "WHERE instruction_id = ANY($1::text[])", instruction_ids, on)
