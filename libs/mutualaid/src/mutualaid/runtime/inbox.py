"""Inbox: records every CloudEvent id given an outcome, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def claim(conn: asyncpg.Connection, schema: str, event_ids: Sequence[str]) -> set[str]:
    """Insert the ids; return those seen for the first time. Must run inside a transaction
    together with the effects of those events, so a rollback forgets both."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        f"INSERT INTO {schema}.inbox(event_id) SELECT DISTINCT unnest($1::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}
