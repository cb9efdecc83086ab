"""Sittings of the jury (``jury.cases``, one row per case and origin) and panel seats."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from jury.domain.model import JuryCase

_COLUMNS = ("case_id, origin, plan, claimant_id, claimant_payer_id, mode, min_votes, "
            "approval_majority_pct, panel_size, quorum_numerator, quorum_denominator, "
            "vote_window_hours, opens_at, closes_at, decided, draw_round, seats, "
            "last_closed_at")


def _case(row: asyncpg.Record) -> JuryCase:
    return JuryCase(*row.values())


async def sittings(conn: asyncpg.Connection, case_id: str) -> list[JuryCase]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM jury.cases WHERE case_id=$1 "
                            "ORDER BY opens_at", case_id)
    return [_case(r) for r in rows]


async def current(conn: asyncpg.Connection, case_id: str) -> JuryCase | None:
    """The sitting a CloseVoting is about: the undecided one, else the latest; locked, so
    a vote run (which takes a share lock) cannot commit between the tally and the close."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM jury.cases WHERE case_id=$1 "
        "ORDER BY decided, opens_at DESC LIMIT 1 FOR UPDATE", case_id)
    return _case(row) if row else None


async def open_for_votes(conn: asyncpg.Connection, case_ids: Iterable[str]
                         ) -> dict[str, JuryCase]:
    """The undecided sittings of these cases (at most one each), share-locked until the
    run's votes and counters are stored."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM jury.cases WHERE case_id = ANY($1::text[]) AND NOT decided "
        "FOR SHARE", list(case_ids))
    return {r["case_id"]: _case(r) for r in rows}


async def save(conn: asyncpg.Connection, c: JuryCase) -> None:
    await conn.execute(
        f"INSERT INTO jury.cases ({_COLUMNS}) VALUES "
        "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) "
        "ON CONFLICT (case_id, origin) DO UPDATE SET closes_at=EXCLUDED.closes_at, "
        "decided=EXCLUDED.decided, draw_round=EXCLUDED.draw_round, seats=EXCLUDED.seats, "
        "last_closed_at=EXCLUDED.last_closed_at",
        c.case_id, c.origin, c.plan, c.claimant_id, c.claimant_payer_id, c.mode, c.min_votes,
        c.approval_majority_pct, c.panel_size, c.quorum_numerator, c.quorum_denominator,
        c.vote_window_hours, c.opens_at, c.closes_at, c.decided, c.draw_round, c.seats,
        c.last_closed_at)


async def panel(conn: asyncpg.Connection, c: JuryCase) -> list[str]:
    """The jurors on the sitting's current panel."""
    return [r["juror_id"] for r in await conn.fetch(
        "SELECT juror_id FROM jury.panel_seats WHERE case_id=$1 AND origin=$2 "
        "AND released_round IS NULL ORDER BY juror_id", c.case_id, c.origin)]


async def ever_seated(conn: asyncpg.Connection, case_id: str) -> set[str]:
    return {r["juror_id"] for r in await conn.fetch(
        "SELECT juror_id FROM jury.panel_seats WHERE case_id=$1", case_id)}


async def seat(conn: asyncpg.Connection, c: JuryCase, seated: Iterable[str],
               released: Iterable[str]) -> None:
    """A new round (``c.draw_round``): release those replaced, seat those drawn."""
    await conn.execute(
        "UPDATE jury.panel_seats SET released_round=$3 WHERE case_id=$1 "
        "AND juror_id = ANY($2::text[])", c.case_id, list(released), c.draw_round)
    await conn.executemany(
        "INSERT INTO jury.panel_seats (case_id, juror_id, origin, drawn_round) "
        "VALUES ($1,$2,$3,$4)", [(c.case_id, j, c.origin, c.draw_round) for j in seated])
