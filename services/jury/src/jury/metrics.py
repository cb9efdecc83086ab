"""Jury's business metrics: cases before the jury and the votes recorded, read from jury's
own tables every few seconds (the running tallies, never the votes themselves), so that every
replica reports the same figures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from mutualaid.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
REFRESH_SECONDS = 10.0


@dataclass(frozen=True)
class JuryMetrics:
    #: state: ``voting`` (no verdict yet) or ``decided``.
    cases: Gauge
    #: vote: ``approve`` or ``reject``; every vote accepted, on every case and draw round.
    votes: Gauge
    #: Votes on the cases still voting: how close each mode is to its minimum or quorum.
    open_votes: Gauge
    #: (origin, mode, state) counted so far: one that empties drops to 0 rather than vanishing.
    case_keys: set[tuple[str, str, str]] = field(default_factory=set)


def create(registry: CollectorRegistry) -> JuryMetrics:
    return JuryMetrics(
        cases=Gauge("mutualaid_jury_cases", "Jury cases by origin, mode and state",
                    ["origin", "mode", "state"], registry=registry),
        votes=Gauge("mutualaid_jury_votes", "Votes recorded, by vote", ["vote"],
                    registry=registry),
        open_votes=Gauge("mutualaid_jury_open_case_votes",
                         "Votes recorded on cases still voting, by mode", ["mode"],
                         registry=registry),
    )


async def refresh(rt: ServiceRuntime) -> None:
    while True:
        try:
            async with rt.require_pool().acquire() as conn:
                await refresh_once(conn, rt.service_metrics)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError) as exc:
            log.warning("jury metrics not refreshed", error=repr(exc))
        await asyncio.sleep(REFRESH_SECONDS)


async def refresh_once(conn: asyncpg.Connection, m: JuryMetrics) -> None:
    counts = {(r["origin"], r["mode"], r["state"]): r["n"] for r in await conn.fetch(
        "SELECT origin, mode, CASE WHEN decided THEN 'decided' ELSE 'voting' END AS state,"
        " count(*) AS n FROM jury.cases GROUP BY 1, 2, 3")}
    m.case_keys.update(counts)
    for key in m.case_keys:
        m.cases.labels(*key).set(counts.get(key, 0))
    approve, reject = await conn.fetchrow(
        "SELECT COALESCE(sum(votes_for), 0), COALESCE(sum(votes_against), 0) FROM jury.tallies")
    m.votes.labels("approve").set(approve)
    m.votes.labels("reject").set(reject)
    for mode in ("open", "panel"):
        m.open_votes.labels(mode).set(0)
    for r in await conn.fetch(
            "SELECT c.mode, COALESCE(sum(t.votes_for + t.votes_against), 0) AS n"
            " FROM jury.cases c JOIN jury.tallies t USING (case_id, origin)"
            " WHERE NOT c.decided AND t.draw_round = c.draw_round GROUP BY c.mode"):
        m.open_votes.labels(r["mode"]).set(r["n"])
