"""Inbox: records every CloudEvent id given an outcome, inside the caller's transaction,
with a digest of the message so that an id reused for different content is told apart from
a replay."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import asyncpg


def digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


async def claim(conn: asyncpg.Connection, schema: str,
                messages: Sequence[tuple[str, bytes]]) -> tuple[set[str], dict[str, bytes]]:
    """Insert ``(event_id, digest)`` pairs; return the ids seen for the first time, and for
    the others the digest first recorded (None for rows recorded before digests were).
    Must run inside a transaction together with the effects of those events, so a
    rollback forgets both."""
    if not messages:
        return set(), {}
    ids = [m[0] for m in messages]
    rows = await conn.fetch(
        f"INSERT INTO {schema}.inbox(event_id, digest) "
        "SELECT DISTINCT ON (id) id, d FROM unnest($1::text[], $2::bytea[]) "
        "WITH ORDINALITY AS u(id, d, n) ORDER BY id, n "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        ids, [m[1] for m in messages])
    fresh = {r["event_id"] for r in rows}
    seen = list(set(ids) - fresh)
    known = await conn.fetch(f"SELECT event_id, digest FROM {schema}.inbox "
                             "WHERE event_id = ANY($1::text[])", seen) if seen else []
    return fresh, {r["event_id"]: r["digest"] for r in known}
