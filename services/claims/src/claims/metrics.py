"""Claims' business metrics: cases by plan and state, read from claims' own table every few
seconds, so that every replica reports the same figures whichever one handled the case."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from mutualaid.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
REFRESH_SECONDS = 10.0


def create(registry: CollectorRegistry) -> Gauge:
    return Gauge("mutualaid_claims_cases", "Cases by plan and state", ["plan", "state"],
                 registry=registry)


async def refresh_cases(rt: ServiceRuntime) -> None:
    seen: set[tuple[str, str]] = set()
    while True:
        try:
            async with rt.require_pool().acquire() as conn:
                seen = await refresh_once(conn, rt.service_metrics, seen)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError) as exc:
            # the database may be away; the gauges keep their last values until it is back
            log.warning("case counts not refreshed", error=repr(exc))
        await asyncio.sleep(REFRESH_SECONDS)


async def refresh_once(conn: asyncpg.Connection, gauge: Gauge,
                       seen: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Sets every (plan, state) counted now; one counted before and empty now drops to 0
    rather than vanishing, so a panel shows the state emptying. Returns what was set."""
    counts = {(r["plan"], r["state"]): r["n"] for r in await conn.fetch(
        "SELECT plan, state, count(*) AS n FROM claims.cases GROUP BY plan, state")}
    for key in seen | counts.keys():
        gauge.labels(*key).set(counts.get(key, 0))
    return seen | counts.keys()
