"""Billing's business metrics, read from billing's tables every few seconds so that any
coordinator replica reports the same figures whichever process did the work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from mutualaid.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class BillingMetrics:
    shards: Gauge
    periods: Gauge
    last_debits: Gauge
    last_subsidy: Gauge
    last_members: Gauge
    last_instructions: Gauge
    last_duration: Gauge
    arrears_payers: Gauge
    arrears_fen: Gauge


def create(registry: CollectorRegistry) -> BillingMetrics:
    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)
    return BillingMetrics(
        shards=gauge("mutualaid_billing_running_shards",
                     "Shards of periods still running, by state (assigned, done, failed)",
                     ("plan", "state")),
        periods=gauge("mutualaid_billing_periods", "Sharing periods by status", ("status",)),
        last_debits=gauge("mutualaid_billing_last_period_member_debits_fen",
                          "Member debits of the plan's latest completed period", ("plan",)),
        last_subsidy=gauge("mutualaid_billing_last_period_subsidy_fen",
                           "Operator subsidy of the plan's latest completed period",
                           ("plan",)),
        last_members=gauge("mutualaid_billing_last_period_members",
                           "Members sharing in the plan's latest completed period", ("plan",)),
        last_instructions=gauge("mutualaid_billing_last_period_debit_instructions",
                                "Debit instructions of the plan's latest completed period",
                                ("plan",)),
        last_duration=gauge("mutualaid_billing_last_period_duration_seconds",
                            "Start to completion of the plan's latest completed period",
                            ("plan",)),
        arrears_payers=gauge("mutualaid_billing_arrears_payers",
                             "Payers with failed debits not settled"),
        arrears_fen=gauge("mutualaid_billing_arrears_fen", "Failed debits not settled"),
    )


async def refresh(rt: ServiceRuntime) -> None:
    m: BillingMetrics = rt.service_metrics
    while True:
        try:
            async with rt.require_pool().acquire() as conn:
                await _refresh(conn, m)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError) as exc:
            log.warning("billing metrics not refreshed", error=repr(exc))
        await asyncio.sleep(REFRESH_SECONDS)


async def _refresh(conn: asyncpg.Connection, m: BillingMetrics) -> None:
    m.shards.clear()
    for r in await conn.fetch(
            "SELECT p.plan, t.status, count(*) FROM billing.shard_tasks t JOIN billing.periods p"
            " USING (period_id) WHERE p.status='running' GROUP BY 1, 2"):
        m.shards.labels(r[0], r[1]).set(r[2])
    for status in ("running", "completed", "failed"):
        m.periods.labels(status).set(0)
    for r in await conn.fetch("SELECT status, count(*) FROM billing.periods GROUP BY status"):
        m.periods.labels(r[0]).set(r[1])
    for r in await conn.fetch(
            "SELECT DISTINCT ON (p.plan) p.plan, p.member_debits_fen, p.subsidy_fen, "
            "p.members_sharing, r.started_at, p.completed_at, "
            "(SELECT COALESCE(sum(debit_instructions), 0) FROM billing.shard_tasks t "
            " WHERE t.period_id = p.period_id) AS debits "
            "FROM billing.periods p JOIN billing.runs r USING (run_id) "
            "WHERE p.status='completed' AND NOT p.dry_run "
            "ORDER BY p.plan, p.sharing_date DESC"):
        m.last_debits.labels(r["plan"]).set(r["member_debits_fen"])
        m.last_subsidy.labels(r["plan"]).set(r["subsidy_fen"])
        m.last_members.labels(r["plan"]).set(r["members_sharing"])
        m.last_instructions.labels(r["plan"]).set(r["debits"])
        m.last_duration.labels(r["plan"]).set(
            (r["completed_at"] - r["started_at"]).total_seconds())
    payers, fen = await conn.fetchrow(
        "SELECT count(DISTINCT payer_id), COALESCE(sum(amount_fen), 0) "
        "FROM billing.debit_results WHERE status='failed' AND settled_on IS NULL")
    m.arrears_payers.set(payers)
    m.arrears_fen.set(fen)
