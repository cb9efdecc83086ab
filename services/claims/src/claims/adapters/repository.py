"""asyncpg access to claims' own schema."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg
import orjson

from claims.domain.model import Case, Coverage, State
from mutualaid.contracts import Event
from mutualaid.contracts.membership import MemberJoined

_CASE = ("case_id, member_id, payer_id, plan, illness_code, diagnosed_on, hospital, "
         "age_at_diagnosis, benefit_fen, rule_version, state, investigation_summary, verified, "
         "first_reviewer, rejected_stage, appealed")
_PLACEHOLDERS = ",".join(f"${i}" for i in range(1, 17))


async def coverage(conn: asyncpg.Connection, member_id: str) -> Coverage | None:
    row = await conn.fetchrow(
        "SELECT member_id, payer_id, plan, masked_name, masked_national_id, birth_date, "
        "joined_on, waiting_period_ends_on, covered_until FROM claims.coverage "
        "WHERE member_id=$1", member_id)
    return Coverage(*row.values()) if row else None


async def save_coverage(conn: asyncpg.Connection, e: MemberJoined) -> None:
    await conn.execute(
        "INSERT INTO claims.coverage (member_id, payer_id, plan, masked_name, "
        "masked_national_id, birth_date, joined_on, waiting_period_ends_on) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (member_id) DO NOTHING",
        e.member_id, e.payer_id, e.plan, e.masked_name, e.masked_national_id, e.birth_date,
        e.joined_on, e.waiting_period_ends_on)


async def end_coverage(conn: asyncpg.Connection, member_id: str, on: date) -> None:
    await conn.execute("UPDATE claims.coverage SET covered_until=$2 WHERE member_id=$1 "
                       "AND covered_until IS NULL", member_id, on)


async def forget_person(conn: asyncpg.Connection, member_id: str) -> None:
    await conn.execute("UPDATE claims.coverage SET masked_name=NULL, masked_national_id=NULL, "
                       "birth_date=NULL WHERE member_id=$1", member_id)


async def transfer_coverage(conn: asyncpg.Connection, member_id: str, plan: str) -> None:
    # A transfer keeps the waiting period served and restores coverage in the new plan.
    await conn.execute("UPDATE claims.coverage SET plan=$2, covered_until=NULL "
                       "WHERE member_id=$1", member_id, plan)


async def get(conn: asyncpg.Connection, case_id: str) -> Case | None:
    row = await conn.fetchrow(f"SELECT {_CASE} FROM claims.cases WHERE case_id=$1 FOR UPDATE",
                              case_id)
    if row is None:
        return None
    values = dict(row)
    values["state"] = State(values["state"])
    return Case(**values)


async def member_has_case(conn: asyncpg.Connection, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM claims.cases WHERE member_id=$1 "
        "AND state NOT IN ('rejected','withdrawn'))", member_id))


async def save(conn: asyncpg.Connection, case: Case, events: Sequence[Event]) -> None:
    """Store the case's new state and record every decision in the case log."""
    await conn.execute(
        f"INSERT INTO claims.cases ({_CASE}) VALUES ({_PLACEHOLDERS}) "
        "ON CONFLICT (case_id) DO UPDATE SET state=EXCLUDED.state, "
        "investigation_summary=EXCLUDED.investigation_summary, verified=EXCLUDED.verified, "
        "first_reviewer=EXCLUDED.first_reviewer, rejected_stage=EXCLUDED.rejected_stage, "
        "appealed=EXCLUDED.appealed, updated_at=now()",
        case.case_id, case.member_id, case.payer_id, case.plan, case.illness_code,
        case.diagnosed_on, case.hospital, case.age_at_diagnosis, case.benefit_fen,
        case.rule_version, case.state.value, case.investigation_summary, case.verified,
        case.first_reviewer, case.rejected_stage, case.appealed)
    if events:
        await conn.executemany(
            "INSERT INTO claims.case_log (case_id, event_type, detail) VALUES ($1,$2,$3)",
            [(case.case_id, e.TYPE, orjson.dumps(e.model_dump(mode="json")).decode())
             for e in events])


async def history(conn: asyncpg.Connection, case_id: str) -> list[tuple[str, dict, object]]:
    """Every recorded decision on a case, oldest first (the audit trail)."""
    rows = await conn.fetch("SELECT event_type, detail, recorded_at FROM claims.case_log "
                            "WHERE case_id=$1 ORDER BY id", case_id)
    return [(r["event_type"], orjson.loads(r["detail"]), r["recorded_at"]) for r in rows]
