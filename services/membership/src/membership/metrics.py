"""Membership's business metrics: plan size, refreshed from the plan counts table."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Gauge

from .adapters import repository as repo

if TYPE_CHECKING:
    from mutualaid.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
REFRESH_SECONDS = 10.0


def create(registry: CollectorRegistry) -> Gauge:
    return Gauge("mutualaid_members", "Members by plan and status", ["plan", "status"],
                 registry=registry)


async def refresh_plan_size(rt: ServiceRuntime) -> None:
    while True:
        try:
            async with rt.require_pool().acquire() as conn:
                for plan, status, members in await repo.plan_counts(conn):
                    rt.service_metrics.labels(plan, status).set(members)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError) as exc:
            # the database may be away; the gauges keep their last values until it is back
            log.warning("plan size not refreshed", error=repr(exc))
        await asyncio.sleep(REFRESH_SECONDS)
