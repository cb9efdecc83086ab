"""asyncpg access to publicity's own schema."""

from __future__ import annotations

from datetime import date

import asyncpg
import orjson

from mutualaid.contracts.claims import CaseReadyForPublicity
from publicity.domain.model import Objector, PublishedCase, Round


async def add_case(conn: asyncpg.Connection, e: CaseReadyForPublicity) -> None:
    await conn.execute(
        "INSERT INTO publicity.cases (case_id, claimant_id, claimant_payer_id, ready_on, notice)"
        " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (case_id) DO NOTHING",
        e.case_id, e.member_id, e.payer_id, e.ready_on,
        orjson.dumps(e.model_dump(mode="json")).decode())


async def waiting_cases(conn: asyncpg.Connection, by: date) -> list[CaseReadyForPublicity]:
    rows = await conn.fetch("SELECT notice FROM publicity.cases WHERE round_date IS NULL "
                            "AND ready_on <= $1 ORDER BY ready_on, case_id", by)
    return [CaseReadyForPublicity.model_validate_json(r["notice"]) for r in rows]


async def get_round(conn: asyncpg.Connection, round_date: date) -> Round | None:
    row = await conn.fetchrow("SELECT round_date, objection_deadline, closed, closed_on FROM "
                              "publicity.rounds WHERE round_date=$1 FOR UPDATE", round_date)
    return Round(*row.values()) if row else None


async def rounds_since(conn: asyncpg.Connection, since: date) -> list[Round]:
    rows = await conn.fetch("SELECT round_date, objection_deadline, closed, closed_on FROM "
                            "publicity.rounds WHERE round_date >= $1", since)
    return [Round(*r.values()) for r in rows]


async def save_round(conn: asyncpg.Connection, rnd: Round, case_ids: list[str]) -> None:
    await conn.execute(
        "INSERT INTO publicity.rounds (round_date, objection_deadline, closed, closed_on) "
        "VALUES ($1,$2,$3,$4) ON CONFLICT (round_date) "
        "DO UPDATE SET closed=EXCLUDED.closed, closed_on=EXCLUDED.closed_on",
        rnd.round_date, rnd.objection_deadline, rnd.closed, rnd.closed_on)
    if case_ids:
        await conn.execute("UPDATE publicity.cases SET round_date=$1 WHERE case_id = ANY($2)",
                           rnd.round_date, case_ids)


async def get_case(conn: asyncpg.Connection, case_id: str) -> PublishedCase | None:
    row = await conn.fetchrow("SELECT case_id, claimant_id, claimant_payer_id, round_date "
                              "FROM publicity.cases WHERE case_id=$1", case_id)
    return PublishedCase(*row.values()) if row else None


async def objection_counts(conn: asyncpg.Connection, round_date: date) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT c.case_id, count(o.objection_id) AS n FROM publicity.cases c "
        "LEFT JOIN publicity.objections o USING (case_id) WHERE c.round_date=$1 "
        "GROUP BY c.case_id", round_date)
    return {r["case_id"]: r["n"] for r in rows}


async def objector(conn: asyncpg.Connection, member_id: str) -> Objector | None:
    row = await conn.fetchrow("SELECT member_id, payer_id, active FROM publicity.members "
                              "WHERE member_id=$1", member_id)
    return Objector(*row.values()) if row else None


async def has_objected(conn: asyncpg.Connection, case_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM publicity.objections WHERE case_id=$1 AND member_id=$2)",
        case_id, member_id))


async def objection_id_taken(conn: asyncpg.Connection, objection_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM publicity.objections WHERE objection_id=$1)",
        objection_id))


async def add_objection(conn: asyncpg.Connection, objection_id: str, case_id: str,
                        member_id: str, reason: str, filed_on: date) -> None:
    await conn.execute("INSERT INTO publicity.objections VALUES ($1,$2,$3,$4,$5)",
                       objection_id, case_id, member_id, reason, filed_on)


async def set_member(conn: asyncpg.Connection, member_id: str, payer_id: str,
                     active: bool) -> None:
    await conn.execute(
        "INSERT INTO publicity.members VALUES ($1,$2,$3) ON CONFLICT (member_id) "
        "DO UPDATE SET active=EXCLUDED.active", member_id, payer_id, active)
