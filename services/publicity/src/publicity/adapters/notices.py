"""asyncpg access to the published sharing notices."""

from __future__ import annotations

import asyncpg

from mutualaid.contracts.publicity import SharingNoticePublished


async def add_notice(conn: asyncpg.Connection, notice: SharingNoticePublished) -> bool:
    """Store the notice; ``False`` when its period already has one (billing runs a period
    once, so a second notice is a replay: the first stays the public record)."""
    return await conn.fetchval(
        "INSERT INTO publicity.sharing_notices (period_id, plan, sharing_date, notice) "
        "VALUES ($1,$2,$3,$4) ON CONFLICT (period_id) DO NOTHING RETURNING true",
        notice.period_id, notice.plan, notice.sharing_date, notice.model_dump_json()) or False
