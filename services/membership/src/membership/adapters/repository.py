"""asyncpg access to membership's own schema."""

from __future__ import annotations

from datetime import date

import asyncpg

from membership.domain.model import Member, Status

_COLUMNS = ("member_id, payer_id, plan, relation, birth_date, joined_on, "
            "waiting_period_ends_on, status")


def _member(row: asyncpg.Record) -> Member:
    return Member(row["member_id"], row["payer_id"], row["plan"], row["relation"],
                  row["birth_date"], row["joined_on"], row["waiting_period_ends_on"],
                  Status(row["status"]))


async def get(conn: asyncpg.Connection, member_id: str) -> Member | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM membership.members WHERE member_id=$1",
                              member_id)
    return _member(row) if row else None


async def member_id_taken(conn: asyncpg.Connection, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM membership.members WHERE member_id=$1)", member_id))


async def person_is_active(conn: asyncpg.Connection, id_hash: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM membership.members WHERE national_id_hash=$1 "
        "AND status='active')", id_hash))


async def active_family(conn: asyncpg.Connection, payer_id: str) -> list[Member]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM membership.members WHERE payer_id=$1 AND status='active' "
        "ORDER BY member_id", payer_id)
    return [_member(r) for r in rows]


async def add(conn: asyncpg.Connection, *, member_id: str, payer_id: str, plan: str,
              relation: str, name: str, masked_name: str, id_hash: str, masked_id: str,
              birth_date: date, joined_on: date, waiting_period_ends_on: date,
              rule_version: str) -> None:
    await conn.execute(
        "INSERT INTO membership.members (member_id, payer_id, plan, relation, name, masked_name,"
        " national_id_hash, masked_national_id, birth_date, joined_on, waiting_period_ends_on,"
        " rule_version) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        member_id, payer_id, plan, relation, name, masked_name, id_hash, masked_id, birth_date,
        joined_on, waiting_period_ends_on, rule_version)


async def set_status(conn: asyncpg.Connection, member_ids: list[str], status: Status,
                     on: date) -> None:
    await conn.execute(
        "UPDATE membership.members SET status=$2, status_on=$3, updated_at=now() "
        "WHERE member_id = ANY($1::text[])", member_ids, status.value, on)


async def set_plan(conn: asyncpg.Connection, member_id: str, plan: str) -> None:
    await conn.execute("UPDATE membership.members SET plan=$2, updated_at=now() "
                       "WHERE member_id=$1", member_id, plan)
