"""The gauges added for the dashboards, on the real Postgres (and broker for the outbox): the
outbox backlog's age, claims' cases by state, jury's cases and votes."""

from __future__ import annotations

import asyncpg
import pytest
from claims import metrics as claims_metrics
from jury import metrics as jury_metrics
from prometheus_client import CollectorRegistry
from testkit import service_database

from mutualaid.runtime import db, outbox
from mutualaid.runtime.kafka import ensure_topics, new_producer
from mutualaid.runtime.metrics import RuntimeMetrics
from mutualaid.runtime.outbox import OutboxRelay, OutgoingRecord
from mutualaid.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_outbox_gauges_show_the_backlog_and_its_oldest_event_until_drained(
        pool: asyncpg.Pool, schema: str, database_url: str, kafka_bootstrap: str) -> None:
    await db.migrate(pool, schema, None)
    topic = f"{schema}.events"
    settings = ServiceSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await ensure_topics(settings, [topic])
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, schema, [OutgoingRecord(topic, f"e{i}".encode(), b"k")
                                          for i in range(5)])
        await conn.execute(f"UPDATE {schema}.outbox "
                           "SET created_at = now() - interval '90 seconds'")
    producer = new_producer(settings, "test-outbox-age")
    await producer.start()
    registry = CollectorRegistry()
    relay = OutboxRelay(dsn=database_url, schema=schema, producer=producer,
                        metrics=RuntimeMetrics.create(registry), batch_size=2)
    try:
        async with pool.acquire() as conn:
            assert await relay.publish_pending(conn) == 2
            # counted before the batch was sent: what was waiting, and for how long
            assert value(registry, "mutualaid_outbox_pending") == 5
            age = value(registry, "mutualaid_outbox_oldest_age_seconds")
            assert age is not None and 90 <= age < 150
            while await relay.publish_pending(conn):
                pass
        assert value(registry, "mutualaid_outbox_pending") == 0
        assert value(registry, "mutualaid_outbox_oldest_age_seconds") == 0
        assert value(registry, "mutualaid_outbox_published_total") == 5
    finally:
        await producer.stop()


async def test_claims_cases_by_state_drop_to_zero_when_a_state_empties() -> None:
    async with service_database("claims") as sdb:
        registry = CollectorRegistry()
        gauge = claims_metrics.create(registry)

        async def add(case_id: str, state: str) -> None:
            await sdb.pool.execute(
                "INSERT INTO claims.cases (case_id, member_id, payer_id, plan, illness_code, "
                "diagnosed_on, hospital, age_at_diagnosis, benefit_fen, rule_version, state) "
                "VALUES ($1, 'm', 'p', 'critical_illness', 'C1', '2020-05-01', 'h', 30, "
                "30000000, '2019-01-01', $2)", case_id, state)

        await add("c1", "filed")
        await add("c2", "filed")
        await add("c3", "approved")
        async with sdb.pool.acquire() as conn:
            seen = await claims_metrics.refresh_once(conn, gauge, set())
            assert value(registry, "mutualaid_claims_cases", plan="critical_illness",
                         state="filed") == 2
            await conn.execute("UPDATE claims.cases SET state = 'published'")
            await claims_metrics.refresh_once(conn, gauge, seen)
        assert value(registry, "mutualaid_claims_cases", plan="critical_illness",
                     state="filed") == 0
        assert value(registry, "mutualaid_claims_cases", plan="critical_illness",
                     state="published") == 3
        assert value(registry, "mutualaid_claims_cases", plan="critical_illness",
                     state="approved") == 0


async def test_jury_cases_and_votes_come_from_the_tallies() -> None:
    async with service_database("jury") as sdb:
        registry = CollectorRegistry()
        m = jury_metrics.create(registry)

        async def add(case_id: str, mode: str, decided: bool, votes: tuple[int, int]) -> None:
            await sdb.pool.execute(
                "INSERT INTO jury.cases (case_id, claimant_id, claimant_payer_id, mode, "
                "min_votes, approval_majority_pct, closes_at, decided, origin, plan, "
                "panel_size, quorum_numerator, quorum_denominator, vote_window_hours, "
                "opens_at) VALUES ($1, 'm', 'p', $2, 1000, 50, now(), $3, 'dispute', "
                "'critical_illness', 11, 2, 3, 72, now() - interval '72 hours')",
                case_id, mode, decided)
            await sdb.pool.execute("INSERT INTO jury.tallies VALUES ($1, 'dispute', 0, $2, $3)",
                                   case_id, *votes)

        await add("c1", "open", False, (700, 200))
        await add("c2", "open", True, (900, 300))
        await add("c3", "panel", False, (5, 1))
        async with sdb.pool.acquire() as conn:
            await jury_metrics.refresh_once(conn, m)
        assert value(registry, "mutualaid_jury_cases", origin="dispute", mode="open",
                     state="voting") == 1
        assert value(registry, "mutualaid_jury_cases", origin="dispute", mode="open",
                     state="decided") == 1
        assert value(registry, "mutualaid_jury_votes", vote="approve") == 1605
        assert value(registry, "mutualaid_jury_votes", vote="reject") == 501
        assert value(registry, "mutualaid_jury_open_case_votes", mode="open") == 900
        assert value(registry, "mutualaid_jury_open_case_votes", mode="panel") == 6
