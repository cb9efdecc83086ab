"""Inbox retention: the de-duplication record of a service grows by one row per command (and
per event it records), so rows older than the window in which a message can still be
redelivered are deleted, a bounded batch at a time.

The window must exceed the retention of every topic the service reads (a message can only
come back while Kafka still holds it) plus any replay operators may do from the DLQ: 35 days
by default, against Kafka's default of 7.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import structlog

log = structlog.get_logger(__name__)
BATCH = 10_000


async def prune_inbox(conn: asyncpg.Connection, schema: str, older_than: timedelta) -> int:
    """Delete inbox rows older than ``older_than``; returns how many went. Batches keep each
    transaction short; SKIP LOCKED lets replicas prune side by side."""
    total = 0
    while True:
        deleted = await conn.fetchval(
            f"WITH old AS (SELECT ctid FROM {schema}.inbox WHERE received_at < now() - $1::interval "
            f"LIMIT {BATCH} FOR UPDATE SKIP LOCKED), "
            f"gone AS (DELETE FROM {schema}.inbox i USING old WHERE i.ctid = old.ctid "
            "RETURNING 1) SELECT count(*) FROM gone", older_than)
        total += deleted
        if deleted < BATCH:
            return total
        await asyncio.sleep(0)  # let the consumer's work through between batches


async def keep_pruning(pool: asyncpg.Pool, schema: str, older_than: timedelta,
                       every: timedelta) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                gone = await prune_inbox(conn, schema, older_than)
            if gone:
                log.info("inbox pruned", schema=schema, deleted=gone,
                         older_than_days=older_than.days)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("inbox not pruned", error=repr(exc))
        await asyncio.sleep(every.total_seconds())
