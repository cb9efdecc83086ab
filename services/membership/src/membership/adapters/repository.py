"""asyncpg access to membership's own schema.

Every lookup goes through an index that stays a point or range lookup at 100 million rows:
the primary key (member id), the partial unique index on the ID hash of active members
(one active membership per person), the partial index by payer (family, lapse), and the
partial index by birth date for the age-limit sweep. Batches pass their keys as arrays, so
one statement serves a whole consumed batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import asyncpg

from membership.domain.model import Known, Member, Status
from membership.domain.plan_size import Deltas, PlanSize
from membership.domain.rules import Admission

_COLUMNS = ("member_id, payer_id, plan, relation, birth_date, joined_on, "
            "waiting_period_ends_on, status, end_reason, erased_on")
#: The columns of _COLUMNS after the member id, empty: rows of a lookup that finds no member.
_NO_MEMBER = ("NULL::text, NULL::text, NULL::text, NULL::date, NULL::date, NULL::date, "
              "NULL::text, NULL::text, NULL::date")


def _member(row: asyncpg.Record) -> Member:
    return Member(row["member_id"], row["payer_id"], row["plan"], row["relation"],
                  row["birth_date"], row["joined_on"], row["waiting_period_ends_on"],
                  Status(row["status"]), row["end_reason"], row["erased_on"] is not None)


async def get(conn: asyncpg.Connection, member_id: str) -> Member | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM membership.members WHERE member_id=$1 "
                              "FOR UPDATE", member_id)
    return _member(row) if row else None


async def known(conn: asyncpg.Connection, member_ids: Iterable[str], id_hashes: Iterable[str],
                payer_ids: Iterable[str]) -> Known:
    """What a batch of joins needs to know: one statement, one index probe per key.

    ``unnest ... CROSS JOIN LATERAL (... LIMIT 1)`` rather than ``= ANY``: the lateral form
    always plans as one probe per key of the right index, whatever the statistics say. With
    ``= ANY`` a freshly migrated table (no statistics yet: exactly a bulk import's case)
    was read by sequential or wrong-index scans whose cost grew with every imported batch
    (measured: 6 ms per 2,000 keys at 50k rows, 62 ms at 200k; the lateral form stays at
    about 2 ms). One statement rather than three: the caller overlaps its single round trip
    with reading the joins."""
    # The payers' branch comes first: a UNION takes its column names from the first branch.
    rows = await conn.fetch(
        f"SELECT 'p' AS kind, m.* FROM unnest($3::text[]) k(id) CROSS JOIN LATERAL ("
        f"SELECT {_COLUMNS} FROM membership.members WHERE member_id = k.id "
        "AND status = 'active' AND relation = 'self' LIMIT 1) m "
        f"UNION ALL SELECT 't', m.member_id, {_NO_MEMBER} FROM unnest($1::text[]) k(id) "
        "CROSS JOIN LATERAL (SELECT member_id FROM membership.members "
        "WHERE member_id = k.id LIMIT 1) m "
        f"UNION ALL SELECT 'h', m.national_id_hash, {_NO_MEMBER} FROM unnest($2::text[]) k(h) "
        "CROSS JOIN LATERAL (SELECT national_id_hash FROM membership.members "
        "WHERE national_id_hash = k.h AND status = 'active' LIMIT 1) m",
        list(set(member_ids)), list(set(id_hashes)), list(set(payer_ids)))
    found = Known()
    for row in rows:  # the second column holds each branch's key, whatever its name
        if row["kind"] == "t":
            found.taken_member_ids.add(row["member_id"])
        elif row["kind"] == "h":
            found.active_id_hashes.add(row["member_id"])
        else:
            found.payers[row["member_id"]] = _member(row)
    return found


async def add_many(conn: asyncpg.Connection, admitted: Sequence[Admission]) -> None:
    await conn.copy_records_to_table(
        "members", schema_name="membership",
        columns=["member_id", "payer_id", "plan", "relation", "name", "masked_name",
                 "national_id_hash", "masked_national_id", "birth_date", "joined_on",
                 "waiting_period_ends_on", "rule_version"],
        records=[(a.event.member_id, a.event.payer_id, a.event.plan, a.event.relation, a.name,
                  a.event.masked_name, a.id_hash, a.event.masked_national_id,
                  a.event.birth_date, a.event.joined_on, a.event.waiting_period_ends_on,
                  a.event.rule_version) for a in admitted])


async def person_active_elsewhere(conn: asyncpg.Connection, member_id: str) -> bool:
    """Whether the person behind this member id has another active membership."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM membership.members m JOIN membership.members o "
        "ON o.national_id_hash = m.national_id_hash AND o.status = 'active' "
        "AND o.member_id <> m.member_id WHERE m.member_id = $1)", member_id))


async def active_family(conn: asyncpg.Connection, payer_id: str) -> list[Member]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM membership.members WHERE payer_id=$1 AND status='active' "
        "ORDER BY member_id FOR UPDATE", payer_id)
    return [_member(r) for r in rows]


async def age_limit_reached(conn: asyncpg.Connection, born_on_or_before: date) -> list[Member]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM membership.members WHERE status='active' "
        "AND plan='critical_illness' AND birth_date <= $1 ORDER BY member_id FOR UPDATE",
        born_on_or_before)
    return [_member(r) for r in rows]


async def set_status(conn: asyncpg.Connection, member_ids: list[str], status: Status,
                     on: date, end_reason: str | None = None) -> None:
    await conn.execute(
        "UPDATE membership.members SET status=$2, status_on=$3, end_reason=$4, "
        "updated_at=now() WHERE member_id = ANY($1::text[])",
        member_ids, status.value, on, end_reason)


async def move_to_plan(conn: asyncpg.Connection, member_id: str, plan: str, on: date) -> None:
    await conn.execute(
        "UPDATE membership.members SET plan=$2, status='active', status_on=$3, end_reason=NULL,"
        " updated_at=now() WHERE member_id=$1", member_id, plan, on)


async def apply_counts(conn: asyncpg.Connection, deltas: Deltas) -> list[PlanSize]:
    """Apply count changes; return the size of every plan touched."""
    changes = sorted((k, v) for k, v in deltas.items() if v)
    if not changes:
        return []
    # Lock in a fixed order so concurrent batches cannot deadlock on the counter rows.
    await conn.execute(
        "SELECT 1 FROM membership.plan_counts WHERE (plan, status) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY plan, status FOR UPDATE",
        [p for (p, _), _ in changes], [s for (_, s), _ in changes])
    await conn.execute(
        "UPDATE membership.plan_counts c SET members = c.members + d.delta "
        "FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(plan, status, delta) "
        "WHERE c.plan = d.plan AND c.status = d.status",
        [p for (p, _), _ in changes], [s for (_, s), _ in changes], [v for _, v in changes])
    rows = await conn.fetch(
        "SELECT c.plan, c.members, t.reached FROM membership.plan_counts c "
        "JOIN membership.plan_thresholds t USING (plan) "
        "WHERE c.status = 'active' AND c.plan = ANY($1::text[]) ORDER BY c.plan",
        sorted({p for (p, _), _ in changes}))
    return [PlanSize(r["plan"], r["members"], r["reached"]) for r in rows]


async def set_reached(conn: asyncpg.Connection, reached: Mapping[str, bool]) -> None:
    await conn.executemany("UPDATE membership.plan_thresholds SET reached=$2 WHERE plan=$1",
                           sorted(reached.items()))


async def plan_counts(conn: asyncpg.Connection) -> list[tuple[str, str, int]]:
    rows = await conn.fetch("SELECT plan, status, members FROM membership.plan_counts")
    return [(r["plan"], r["status"], r["members"]) for r in rows]


async def erase(conn: asyncpg.Connection, member_id: str, on: date) -> None:
    """Personal data out; ids, plan, dates and status stay (docs/membership.md#erasure)."""
    await conn.execute(
        "UPDATE membership.members SET name=NULL, national_id_hash=NULL, masked_name=NULL, "
        "masked_national_id=NULL, birth_date=NULL, erased_on=$2, updated_at=now() "
        "WHERE member_id=$1", member_id, on)
