"""asyncpg access to jury's own schema."""

from __future__ import annotations

import asyncpg

from jury.domain.model import Candidate, JuryCase
from mutualaid.contracts.jury import VoteCast
from mutualaid.contracts.membership import MemberJoined


async def add_member(conn: asyncpg.Connection, e: MemberJoined) -> None:
    await conn.execute("INSERT INTO jury.members VALUES ($1,$2,$3,$4,true) "
                       "ON CONFLICT (member_id) DO NOTHING",
                       e.member_id, e.payer_id, e.birth_date, e.joined_on)


async def deactivate(conn: asyncpg.Connection, member_id: str) -> None:
    await conn.execute("UPDATE jury.members SET active=false WHERE member_id=$1", member_id)


async def candidate(conn: asyncpg.Connection, member_id: str) -> Candidate | None:
    row = await conn.fetchrow("SELECT member_id, payer_id, birth_date, joined_on, active "
                              "FROM jury.members WHERE member_id=$1", member_id)
    return Candidate(*row.values()) if row else None


async def has_fraud_record(conn: asyncpg.Connection, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jury.fraud_records WHERE member_id=$1)", member_id))


async def add_fraud_record(conn: asyncpg.Connection, member_id: str) -> None:
    await conn.execute("INSERT INTO jury.fraud_records VALUES ($1) ON CONFLICT DO NOTHING",
                       member_id)


async def save_juror(conn: asyncpg.Connection, member_id: str, score: int, on: object) -> None:
    await conn.execute("INSERT INTO jury.jurors VALUES ($1,$2,$3) ON CONFLICT (member_id) "
                       "DO UPDATE SET exam_score=EXCLUDED.exam_score, "
                       "qualified_on=EXCLUDED.qualified_on", member_id, score, on)


async def is_juror(conn: asyncpg.Connection, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jury.jurors WHERE member_id=$1)", member_id))


async def add_parties(conn: asyncpg.Connection, case_id: str, claimant: str, payer: str) -> None:
    await conn.execute("INSERT INTO jury.case_parties VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                       case_id, claimant, payer)


async def parties(conn: asyncpg.Connection, case_id: str) -> tuple[str, str] | None:
    row = await conn.fetchrow("SELECT claimant_id, claimant_payer_id FROM jury.case_parties "
                              "WHERE case_id=$1", case_id)
    return (row["claimant_id"], row["claimant_payer_id"]) if row else None


async def add_objector(conn: asyncpg.Connection, case_id: str, member_id: str) -> None:
    await conn.execute("INSERT INTO jury.objectors VALUES ($1,$2) ON CONFLICT DO NOTHING",
                       case_id, member_id)


async def objected(conn: asyncpg.Connection, case_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jury.objectors WHERE case_id=$1 AND member_id=$2)",
        case_id, member_id))


async def get_case(conn: asyncpg.Connection, case_id: str) -> JuryCase | None:
    row = await conn.fetchrow(
        "SELECT case_id, claimant_id, claimant_payer_id, mode, min_votes, "
        "approval_majority_pct, closes_at, decided FROM jury.cases WHERE case_id=$1 FOR UPDATE",
        case_id)
    return JuryCase(*row.values()) if row else None


async def save_case(conn: asyncpg.Connection, c: JuryCase) -> None:
    await conn.execute(
        "INSERT INTO jury.cases VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (case_id) "
        "DO UPDATE SET decided=EXCLUDED.decided", c.case_id, c.claimant_id, c.claimant_payer_id,
        c.mode, c.min_votes, c.approval_majority_pct, c.closes_at, c.decided)


async def has_voted(conn: asyncpg.Connection, case_id: str, juror_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jury.votes WHERE case_id=$1 AND juror_id=$2)",
        case_id, juror_id))


async def add_vote(conn: asyncpg.Connection, v: VoteCast) -> None:
    await conn.execute("INSERT INTO jury.votes VALUES ($1,$2,$3,$4)", v.case_id, v.juror_id,
                       v.approve, v.cast_at)


async def counts(conn: asyncpg.Connection, case_id: str) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT count(*) FILTER (WHERE approve) AS yes, "
                              "count(*) FILTER (WHERE NOT approve) AS no FROM jury.votes "
                              "WHERE case_id=$1", case_id)
    return row["yes"], row["no"]
