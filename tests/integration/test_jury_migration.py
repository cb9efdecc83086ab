"""Migration 002 on a jury schema that already holds 001's data: open cases keep their
votes, gain counters equal to them, and a sitting's opening time."""

from __future__ import annotations

import uuid
from importlib.resources import files

import asyncpg
import pytest
from devstack.database import drop_database, fresh_database

from mutualaid.runtime import db

pytestmark = pytest.mark.integration


async def test_002_keeps_existing_cases_and_votes_and_backfills_the_counters() -> None:
    url = fresh_database(f"jury_m_{uuid.uuid4().hex[:10]}")
    migrations = files("jury") / "migrations"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE SCHEMA jury")
        await conn.execute((migrations / "001_jury.sql").read_text())
        await conn.execute(
            "INSERT INTO jury.case_parties VALUES ('c-1','m-1','p-1');"
            "INSERT INTO jury.cases VALUES ('c-1','m-1','p-1','open',1000,50,"
            "'2024-05-13T00:00:00+08:00',false);"
            "INSERT INTO jury.votes VALUES ('c-1','j-1',true,'2024-05-11T00:00:00Z'),"
            "('c-1','j-2',false,'2024-05-11T00:00:00Z'),('c-1','j-3',true,'2024-05-11Z');")
        await conn.execute(db._RUNTIME_SQL.format(schema="jury"))
        await conn.execute("INSERT INTO jury.schema_migrations VALUES ('001_jury.sql')")
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        assert pool is not None
        try:
            assert await db.migrate(pool, "jury", migrations) == [
                "002_sittings_panels_tallies.sql"]
        finally:
            await pool.close()
        tally = await conn.fetchrow("SELECT * FROM jury.tallies")
        assert tuple(tally) == ("c-1", "dispute", 0, 2, 1)
        case = await conn.fetchrow("SELECT origin, plan, opens_at, closes_at, draw_round "
                                   "FROM jury.cases")
        assert (case["origin"], case["plan"], case["draw_round"]) == \
            ("dispute", "critical_illness", 0)
        assert (case["closes_at"] - case["opens_at"]).total_seconds() == 72 * 3600
        assert await conn.fetchval("SELECT plan FROM jury.case_parties") is None
    finally:
        await conn.close()
        drop_database(url)
