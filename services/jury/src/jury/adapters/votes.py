"""Votes and their running counters. A run of votes costs a fixed number of statements
whatever its length: one lookup of where its (case, juror) pairs stand, one insert of the
accepted votes, one upsert of the counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from jury.domain.model import JuryCase, Standing
from jury.domain.rules import TallyDelta
from mutualaid.contracts.jury import VoteCast


async def standing(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str, str]]
                   ) -> Standing:
    """For (case, origin, juror) triples: objectors, votes already stored in that sitting,
    seats on its current panel. Only pairs with one of them come back, which in open mode
    is almost none.

    Each probe is a primary-key lookup, forced by ``LATERAL ... LIMIT 1``: as an
    ``EXISTS`` or an ``= ANY`` filter the planner hashes every vote of the table once per
    run, because it prices 500 cached index probes above a scan (measured: 35 ms a run at
    50,000 votes, growing with the votes, against 3 ms)."""
    unique = sorted(set(pairs))
    if not unique:
        return Standing()
    rows = await conn.fetch(
        "SELECT d.case_id, d.juror_id, o.x IS NOT NULL, v.x IS NOT NULL, s.x IS NOT NULL "
        "FROM unnest($1::text[], $2::text[], $3::text[]) AS d(case_id, origin, juror_id) "
        "LEFT JOIN LATERAL (SELECT 1 AS x FROM jury.objectors "
        "    WHERE case_id = d.case_id AND member_id = d.juror_id LIMIT 1) o ON true "
        "LEFT JOIN LATERAL (SELECT 1 AS x FROM jury.votes WHERE case_id = d.case_id "
        "    AND origin = d.origin AND juror_id = d.juror_id LIMIT 1) v ON true "
        "LEFT JOIN LATERAL (SELECT 1 AS x FROM jury.panel_seats WHERE case_id = d.case_id "
        "    AND juror_id = d.juror_id AND origin = d.origin AND released_round IS NULL "
        "    LIMIT 1) s ON true "
        "WHERE o.x IS NOT NULL OR v.x IS NOT NULL OR s.x IS NOT NULL",
        [p[0] for p in unique], [p[1] for p in unique], [p[2] for p in unique])
    return Standing(objected=frozenset((r[0], r[1]) for r in rows if r[2]),
                    voted=frozenset((r[0], r[1]) for r in rows if r[3]),
                    seated=frozenset((r[0], r[1]) for r in rows if r[4]))


async def record(conn: asyncpg.Connection, casts: Sequence[VoteCast],
                 cases: Mapping[str, JuryCase], deltas: Sequence[TallyDelta]) -> None:
    """Store accepted votes and add them to the counters, in the caller's transaction."""
    if not casts:
        return
    await conn.copy_records_to_table(
        "votes", schema_name="jury",
        columns=["case_id", "juror_id", "approve", "cast_at", "origin", "draw_round"],
        records=[(v.case_id, v.juror_id, v.approve, v.cast_at, cases[v.case_id].origin,
                  cases[v.case_id].draw_round) for v in casts])
    await conn.execute(
        "INSERT INTO jury.tallies AS t (case_id, origin, draw_round, votes_for, votes_against) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[]) "
        "ON CONFLICT (case_id, origin, draw_round) DO UPDATE SET "
        "votes_for = t.votes_for + EXCLUDED.votes_for, "
        "votes_against = t.votes_against + EXCLUDED.votes_against",
        [d.case_id for d in deltas], [d.origin for d in deltas],
        [d.draw_round for d in deltas], [d.votes_for for d in deltas],
        [d.votes_against for d in deltas])


async def tally(conn: asyncpg.Connection, c: JuryCase) -> tuple[int, int]:
    """Votes for and against in the sitting: its counters, one row per draw round."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(votes_for), 0)::bigint, coalesce(sum(votes_against), 0)::bigint "
        "FROM jury.tallies WHERE case_id=$1 AND origin=$2", c.case_id, c.origin)
    return row[0], row[1]


async def voted(conn: asyncpg.Connection, c: JuryCase, juror_ids: Sequence[str]) -> set[str]:
    """Which of these jurors (a panel: a handful) voted in the sitting."""
    return {r["juror_id"] for r in await conn.fetch(
        "SELECT juror_id FROM jury.votes WHERE case_id=$1 AND origin=$2 "
        "AND juror_id = ANY($3::text[])", c.case_id, c.origin, list(juror_ids))}
