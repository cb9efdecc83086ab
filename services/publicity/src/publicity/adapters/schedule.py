"""asyncpg access to the scheduler's record of the calendar commands it has sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg

from publicity.domain.calendar import Due

#: Serialises the ticks of every replica, so each reads what the previous one recorded.
_LOCK = "publicity-scheduler"


async def lock(conn: asyncpg.Connection) -> None:
    """Hold the scheduler lock until the caller's transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK)


async def sent_since(conn: asyncpg.Connection, since: date) -> list[Due]:
    rows = await conn.fetch("SELECT round_date, command_type FROM publicity.scheduled_commands "
                            "WHERE round_date >= $1", since)
    return [Due(r["round_date"], r["command_type"]) for r in rows]


async def record_sent(conn: asyncpg.Connection, due: Sequence[Due], ids: Sequence[str]
                      ) -> set[Due]:
    """Record the commands; return those not recorded before (only those are sent)."""
    if not due:
        return set()
    rows = await conn.fetch(
        "INSERT INTO publicity.scheduled_commands (round_date, command_type, command_id) "
        "SELECT * FROM unnest($1::date[], $2::text[], $3::text[]) "
        "ON CONFLICT DO NOTHING RETURNING round_date, command_type",
        [d.round_date for d in due], [d.kind for d in due], list(ids))
    return {Due(r["round_date"], r["command_type"]) for r in rows}
