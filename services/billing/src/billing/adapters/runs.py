"""asyncpg access for sharded sharing runs: the roll snapshot, periods, shard tasks and the
per-period partitions of charges.

A run reads the roll "as it stood when the run started" without copying it: rows carry the
roll sequence number of the change that wrote them (``seq`` on join, ``left_seq`` on exit,
``plan_seq`` with ``prev_plan`` on transfer). The coordinator takes a SHARE lock on the roll
for the moment it reads the sequence, so every change numbered up to it is committed and
every later change is numbered above it; ``ROLL`` then reads exactly that roll.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg
import numpy as np

from billing.domain.shards import PeriodPlan, RollSlice, ShardCharges, ShardPlan

#: The roll of a period, as of a sequence number: $1 plan, $2 roll date, $3 roll sequence.
ROLL = """
    r.seq <= $3
    AND ((r.plan = $1 AND (r.plan_seq IS NULL OR r.plan_seq <= $3))
         OR (r.prev_plan = $1 AND r.plan_seq > $3))
    AND r.joined_on < $2
    AND (r.left_on IS NULL OR r.left_on > $2 OR r.left_seq > $3)
"""


async def snapshot_roll(conn: asyncpg.Connection) -> int:
    """The roll sequence number every change up to which is committed (see module doc)."""
    await conn.execute("LOCK TABLE billing.roll_members IN SHARE MODE")
    last, called = await conn.fetchrow("SELECT last_value, is_called FROM billing.roll_seq")
    return int(last) if called else 0


async def bucket_counts(conn: asyncpg.Connection, plan: str, roll_date: date, roll_seq: int
                        ) -> dict[int, int]:
    rows = await conn.fetch(f"SELECT r.bucket, count(*) AS n FROM billing.roll_members r "
                            f"WHERE {ROLL} GROUP BY r.bucket", plan, roll_date, roll_seq)
    return {r["bucket"]: r["n"] for r in rows}


@dataclass(frozen=True, slots=True)
class PeriodRow:
    period_id: str
    run_id: str | None
    plan: str
    sharing_date: date
    roll_date: date
    rule_version: str
    status: str
    dry_run: bool
    cases: int
    case_ids: list[str]
    benefits_fen: int
    fee_fen: int
    total_fen: int
    members_sharing: int
    base_share_fen: int
    paying_one_fen_more: int
    roll_seq: int
    previous_period_id: str | None


_PERIOD = ("period_id, run_id, plan, sharing_date, roll_date, rule_version, status, dry_run, "
           "cases, case_ids, benefits_fen, fee_fen, total_fen, members_sharing, "
           "base_share_fen, paying_one_fen_more, roll_seq, previous_period_id")


async def period(conn: asyncpg.Connection, period_id: str, *, lock: bool = False
                 ) -> PeriodRow | None:
    row = await conn.fetchrow(f"SELECT {_PERIOD} FROM billing.periods WHERE period_id=$1"
                              + (" FOR UPDATE" if lock else ""), period_id)
    return PeriodRow(*row.values()) if row else None


async def previous_period(conn: asyncpg.Connection, plan: str, sharing_date: date
                          ) -> tuple[str, str] | None:
    """The plan's latest real period earlier in the same year, and its status."""
    row = await conn.fetchrow(
        "SELECT period_id, status FROM billing.periods WHERE plan=$1 AND NOT dry_run "
        "AND sharing_date < $2 AND sharing_date >= date_trunc('year', $2::date) "
        "ORDER BY sharing_date DESC LIMIT 1", plan, sharing_date)
    return (row["period_id"], row["status"]) if row else None


async def task_states(conn: asyncpg.Connection, period_id: str) -> dict[int, tuple[int, str]]:
    """``task_no -> (members, status)`` of a period's shard tasks."""
    rows = await conn.fetch("SELECT task_no, members, status FROM billing.shard_tasks "
                            "WHERE period_id=$1", period_id)
    return {r["task_no"]: (r["members"], r["status"]) for r in rows}


async def resume_period(conn: asyncpg.Connection, period_id: str, run_id: str | None) -> None:
    """A failed or stalled period runs on: failed shards are assigned again."""
    await conn.execute("UPDATE billing.shard_tasks SET status='assigned', error=NULL, "
                       "done_at=NULL WHERE period_id=$1 AND status='failed'", period_id)
    await conn.execute("UPDATE billing.periods SET status='running', failure=NULL "
                       "WHERE period_id=$1", period_id)
    if run_id is not None:
        await conn.execute("UPDATE billing.runs SET status='running', completed_at=NULL "
                           "WHERE run_id=$1", run_id)


async def create_run(conn: asyncpg.Connection, run_id: str, sharing_date: date,
                     dry_run: bool) -> None:
    await conn.execute("INSERT INTO billing.runs (run_id, sharing_date, dry_run) "
                       "VALUES ($1,$2,$3)", run_id, sharing_date, dry_run)


async def start_period(conn: asyncpg.Connection, *, run_id: str, period_id: str, plan: str,
                       sharing_date: date, roll_date: date, rule_version: str,
                       case_ids: list[str], benefits_fen: int, fee_fen: int, dry_run: bool,
                       roll_seq: int, previous_period_id: str | None,
                       shard_plan: PeriodPlan) -> None:
    await conn.execute(
        "INSERT INTO billing.periods (period_id, run_id, plan, sharing_date, roll_date, "
        "rule_version, cases, case_ids, benefits_fen, fee_fen, total_fen, members_sharing, "
        "base_share_fen, paying_one_fen_more, dry_run, status, roll_seq, previous_period_id) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,'running',$16,$17)",
        period_id, run_id, plan, sharing_date, roll_date, rule_version, len(case_ids),
        case_ids, benefits_fen, fee_fen, shard_plan.total_fen, shard_plan.members,
        shard_plan.base_share_fen, shard_plan.paying_one_fen_more, dry_run, roll_seq,
        previous_period_id)
    await conn.copy_records_to_table(
        "shard_tasks", schema_name="billing",
        columns=["period_id", "task_no", "bucket_lo", "bucket_hi", "members"],
        records=[(period_id, s.task_no, s.bucket_lo, s.bucket_hi, s.member_count)
                 for s in shard_plan.shards])
    if not dry_run:
        await create_partition(conn, period_id)
        await conn.execute("UPDATE billing.approved_cases SET period_id=$1 "
                           "WHERE case_id = ANY($2::text[])", period_id, case_ids)


def partition_name(period_id: str) -> str:
    """``2020-06-14/critical_illness`` -> ``charges_20200614_critical_illness``."""
    name = "charges_" + "".join(c if c.isalnum() else "_" for c in period_id
                                if c != "-").lower()
    if not name.replace("_", "").isalnum() or len(name) > 63:
        raise ValueError(f"no partition name for period {period_id!r}")
    return name


async def create_partition(conn: asyncpg.Connection, period_id: str) -> None:
    """The period's partition of charges. Its own default for ``period_id`` lets workers
    COPY without repeating it on every row. BRIN on bucket: shards write contiguous runs of
    buckets, so a block range index finds a shard's rows (the next period's annual-cap read)
    at a fraction of a B-tree's upkeep. The payer index (payment results) is built once the
    charges are in (``index_payers``): kept up row by row during the shards' COPY it cost
    more than the COPY itself (10 M members: 58 s to load and 23.5 s to index afterwards,
    against 114 s or more with the index in place)."""
    name = partition_name(period_id)
    literal = "'" + period_id.replace("'", "''") + "'"
    await conn.execute(
        f"CREATE TABLE billing.{name} PARTITION OF billing.charges FOR VALUES IN ({literal});"
        f"ALTER TABLE billing.{name} ALTER COLUMN period_id SET DEFAULT {literal};"
        f"CREATE INDEX {name}_bucket ON billing.{name} USING brin (bucket) "
        "WITH (pages_per_range = 16);")


async def index_payers(conn: asyncpg.Connection, period_id: str) -> None:
    name = partition_name(period_id)
    await conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_payer ON billing.{name} "
                       "(payer_id)")


# -- the worker's side ----------------------------------------------------------------


async def claim_task(conn: asyncpg.Connection, period_id: str, task_no: int) -> str | None:
    """The task's status, locked for this transaction (one worker prices a shard at once)."""
    return await conn.fetchval("SELECT status FROM billing.shard_tasks WHERE period_id=$1 "
                               "AND task_no=$2 FOR UPDATE", period_id, task_no)


async def read_roll(conn: asyncpg.Connection, *, plan: str, roll_date: date, roll_seq: int,
                    bucket_lo: int, bucket_hi: int, previous_period_id: str | None
                    ) -> RollSlice:
    """The shard's members in bucket and member order, with what each paid in the plan
    earlier this year. The previous period's figures are read on their own (the block
    range index finds the shard's pages) and matched here: joined in SQL, a misestimate of
    either side could turn the join into a scan of the partition per member."""
    rows = await conn.fetch(
        "SELECT r.member_id, r.payer_id, r.bucket, r.joined_on "
        f"FROM billing.roll_members r WHERE r.bucket >= $4 AND r.bucket < $5 AND {ROLL} "
        "ORDER BY r.bucket, r.member_id", plan, roll_date, roll_seq, bucket_lo, bucket_hi)
    paid: dict[str, int] = {}
    if previous_period_id is not None:
        paid = dict(await conn.fetch(
            "SELECT member_id, paid_in_year_fen FROM billing.charges WHERE period_id = $1 "
            "AND bucket >= $2 AND bucket < $3 AND paid_in_year_fen > 0",
            previous_period_id, bucket_lo, bucket_hi))
    n = len(rows)
    return RollSlice(
        member_ids=[r[0] for r in rows], payer_ids=[r[1] for r in rows],
        buckets=np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
        joined_on=np.fromiter((r[3].toordinal() for r in rows), dtype=np.int64, count=n),
        paid_before_fen=np.fromiter((paid.get(r[0], 0) for r in rows), dtype=np.int64,
                                    count=n))


async def store_charges(conn: asyncpg.Connection, period_id: str, roll: RollSlice,
                        charges: ShardCharges) -> None:
    await conn.copy_records_to_table(
        partition_name(period_id), schema_name="billing",
        columns=["bucket", "member_id", "payer_id", "share_fen", "member_pays_fen",
                 "paid_in_year_fen"],
        records=zip(roll.buckets.tolist(), roll.member_ids, roll.payer_ids,
                    charges.share_fen.tolist(), charges.member_pays_fen.tolist(),
                    charges.paid_in_year_fen.tolist(), strict=True))


async def finish_task(conn: asyncpg.Connection, plan: ShardPlan, charges: ShardCharges,
                      debit_instructions: int) -> None:
    await conn.execute(
        "UPDATE billing.shard_tasks SET status='done', shares_fen=$3, paying_one_fen_more=$4,"
        " member_debits_fen=$5, subsidy_fen=$6, debit_instructions=$7, done_at=now() "
        "WHERE period_id=$1 AND task_no=$2", plan.period_id, plan.task_no, charges.shares_fen,
        charges.paying_one_fen_more, charges.member_debits_fen, charges.subsidy_fen,
        debit_instructions)


async def fail_task(conn: asyncpg.Connection, period_id: str, task_no: int, error: str
                    ) -> None:
    await conn.execute("UPDATE billing.shard_tasks SET status='failed', error=$3, "
                       "done_at=now() WHERE period_id=$1 AND task_no=$2",
                       period_id, task_no, error)


# -- the coordinator's side -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskTotals:
    tasks: int
    done: int
    members: int
    shares_fen: int
    paying_one_fen_more: int
    member_debits_fen: int
    subsidy_fen: int
    debit_instructions: int


async def task_totals(conn: asyncpg.Connection, period_id: str) -> TaskTotals:
    row = await conn.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE status='done'), "
        "COALESCE(sum(members), 0), COALESCE(sum(shares_fen), 0), "
        "COALESCE(sum(paying_one_fen_more), 0), COALESCE(sum(member_debits_fen), 0), "
        "COALESCE(sum(subsidy_fen), 0), COALESCE(sum(debit_instructions), 0) "
        "FROM billing.shard_tasks WHERE period_id=$1", period_id)
    return TaskTotals(*(int(v) for v in row.values()))


async def complete_period(conn: asyncpg.Connection, period_id: str, member_debits_fen: int,
                          subsidy_fen: int) -> None:
    await conn.execute(
        "UPDATE billing.periods SET status='completed', member_debits_fen=$2, subsidy_fen=$3,"
        " completed_at=now() WHERE period_id=$1", period_id, member_debits_fen, subsidy_fen)


async def fail_period(conn: asyncpg.Connection, period_id: str, failure: str) -> None:
    await conn.execute("UPDATE billing.periods SET status='failed', failure=$2 "
                       "WHERE period_id=$1", period_id, failure)


@dataclass(frozen=True, slots=True)
class RunRow:
    sharing_date: date
    dry_run: bool
    periods: list[tuple[str, str]]  # (period_id, status)


async def run_periods(conn: asyncpg.Connection, run_id: str) -> RunRow:
    """A run and the ``(period_id, status)`` of every period of it, the run's row locked."""
    run = await conn.fetchrow("SELECT sharing_date, dry_run FROM billing.runs "
                              "WHERE run_id=$1 FOR UPDATE", run_id)
    rows = await conn.fetch("SELECT period_id, status FROM billing.periods WHERE run_id=$1 "
                            "ORDER BY period_id", run_id)
    return RunRow(run["sharing_date"], run["dry_run"],
                  [(r["period_id"], r["status"]) for r in rows])


async def finish_run(conn: asyncpg.Connection, run_id: str, status: str) -> None:
    await conn.execute("UPDATE billing.runs SET status=$2, completed_at=now() "
                       "WHERE run_id=$1", run_id, status)


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    period_id: str
    plan: str
    benefits_fen: int
    fee_fen: int
    member_debits_fen: int
    subsidy_fen: int
    cases: int
    debit_instructions: int


async def run_totals(conn: asyncpg.Connection, run_id: str) -> list[PeriodTotals]:
    rows = await conn.fetch(
        "SELECT p.period_id, p.plan, p.benefits_fen, p.fee_fen, p.member_debits_fen, "
        "p.subsidy_fen, p.cases, COALESCE(sum(t.debit_instructions), 0)::int "
        "FROM billing.periods p LEFT JOIN billing.shard_tasks t USING (period_id) "
        "WHERE p.run_id=$1 GROUP BY p.period_id ORDER BY p.period_id", run_id)
    return [PeriodTotals(*r.values()) for r in rows]
