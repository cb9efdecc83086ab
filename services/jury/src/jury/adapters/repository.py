"""asyncpg access to jury's own schema: its projections of members, cases and objections,
and the jurors. Sittings and panels are in ``cases``, votes and tallies in ``votes``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import asyncpg

from jury.domain.model import Candidate
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


async def add_parties(conn: asyncpg.Connection, case_id: str, claimant: str, payer: str,
                      plan: str) -> None:
    await conn.execute("INSERT INTO jury.case_parties VALUES ($1,$2,$3,$4) "
                       "ON CONFLICT DO NOTHING", case_id, claimant, payer, plan)


async def parties(conn: asyncpg.Connection, case_id: str) -> tuple[str, str, str] | None:
    """Claimant, claimant's payer and plan of a case jury saw filed."""
    row = await conn.fetchrow("SELECT claimant_id, claimant_payer_id, plan "
                              "FROM jury.case_parties WHERE case_id=$1", case_id)
    if row is None:
        return None
    # Cases filed before the plan was projected were judged as critical_illness.
    return row["claimant_id"], row["claimant_payer_id"], row["plan"] or "critical_illness"


async def hold_dispute(conn: asyncpg.Connection, case_id: str, disputed_on: date) -> None:
    await conn.execute("INSERT INTO jury.held_disputes VALUES ($1,$2) ON CONFLICT DO NOTHING",
                       case_id, disputed_on)


async def release_held_dispute(conn: asyncpg.Connection, case_id: str) -> date | None:
    return await conn.fetchval("DELETE FROM jury.held_disputes WHERE case_id=$1 "
                               "RETURNING disputed_on", case_id)


async def add_objector(conn: asyncpg.Connection, case_id: str, member_id: str) -> None:
    await conn.execute("INSERT INTO jury.objectors VALUES ($1,$2) ON CONFLICT DO NOTHING",
                       case_id, member_id)


async def objected(conn: asyncpg.Connection, case_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jury.objectors WHERE case_id=$1 AND member_id=$2)",
        case_id, member_id))


async def objectors(conn: asyncpg.Connection, case_id: str) -> set[str]:
    return {r["member_id"] for r in await conn.fetch(
        "SELECT member_id FROM jury.objectors WHERE case_id=$1", case_id)}


async def juror_pool(conn: asyncpg.Connection, claimant_payer_id: str) -> list[Candidate]:
    """Qualified, active jurors without a fraud record, for a panel draw. The claimant's
    payer's members are left out here already to keep the list short; the domain applies
    every exclusion itself. One pass over the jurors: draws are rare (one per round)."""
    rows = await conn.fetch(
        "SELECT m.member_id, m.payer_id, m.birth_date, m.joined_on, m.active "
        "FROM jury.jurors j JOIN jury.members m USING (member_id) "
        "WHERE m.active AND m.payer_id <> $1 AND NOT EXISTS "
        "(SELECT 1 FROM jury.fraud_records f WHERE f.member_id = j.member_id)",
        claimant_payer_id)
    return [Candidate(*r.values()) for r in rows]


async def voters(conn: asyncpg.Connection, member_ids: Iterable[str]
                 ) -> tuple[dict[str, Candidate], set[str]]:
    """For a run of votes: the members behind the juror ids, and which of them are
    qualified jurors without a fraud record. Primary-key probes per id (``LATERAL ...
    LIMIT 1``, see ``votes.standing``): with ``= ANY`` the planner hash-joins the whole
    jurors table for every run, and scans members too while their statistics are stale
    after a bulk load (measured: 28-55 ms a run at 100,000 jurors, against 3 ms)."""
    rows = await conn.fetch(
        "SELECT m.member_id, m.payer_id, m.birth_date, m.joined_on, m.active, "
        "j.x IS NOT NULL AND f.x IS NULL "
        "FROM unnest($1::text[]) AS d(member_id) "
        "JOIN LATERAL (SELECT * FROM jury.members WHERE member_id = d.member_id LIMIT 1) m "
        "    ON true "
        "LEFT JOIN LATERAL (SELECT 1 AS x FROM jury.jurors WHERE member_id = d.member_id "
        "    LIMIT 1) j ON true "
        "LEFT JOIN LATERAL (SELECT 1 AS x FROM jury.fraud_records "
        "    WHERE member_id = d.member_id LIMIT 1) f ON true", list(member_ids))
    return ({r[0]: Candidate(r[0], r[1], r[2], r[3], r[4]) for r in rows},
            {r[0] for r in rows if r[5]})
