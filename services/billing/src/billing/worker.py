"""The billing worker's handler: price one shard of a sharing period, store its charges,
send its debit instructions, report back. Workers share ``billing.shard-tasks`` in one
consumer group, so SREs scale a run by starting more of them (``BILLING_ROLE=worker``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from mutualaid.contracts import Event
from mutualaid.contracts.billing import ShardAssigned, ShardCompleted
from mutualaid.runtime import HandlerContext, Router

from .adapters import instruction_stream, runs
from .domain.shards import RollChanged, RollSlice, ShardPlan, debits, price_shard
from .domain.sharing import MoneyEquationBroken

router = Router("billing", takes_commands=False)
log = structlog.get_logger(__name__)


@router.event(ShardAssigned)
async def price_shard_task(task: ShardAssigned, ctx: HandlerContext) -> Sequence[Event]:
    started = time.perf_counter()
    status = await runs.claim_task(ctx.conn, task.period_id, task.task_no)
    if status != "assigned":
        # A copy of a task already priced (or of a period discarded since): nothing to do.
        log.info("shard task skipped", period_id=task.period_id, task_no=task.task_no,
                 status=status)
        return []
    plan = _plan(task)
    roll = await runs.read_roll(ctx.conn, plan=task.plan, roll_date=task.roll_date,
                                roll_seq=task.roll_seq, bucket_lo=task.bucket_lo,
                                bucket_hi=task.bucket_hi,
                                previous_period_id=task.previous_period_id)
    try:
        # Off the event loop: a large shard must not starve the consumer's heartbeats.
        charges = await asyncio.to_thread(price_shard, plan, roll)
    except (RollChanged, MoneyEquationBroken) as exc:
        log.error("shard refused: its books do not balance, nothing sent",
                  period_id=task.period_id, task_no=task.task_no, error=str(exc))
        await runs.fail_task(ctx.conn, task.period_id, task.task_no, str(exc))
        return [ShardCompleted(run_id=task.run_id, period_id=task.period_id,
                               task_no=task.task_no, ok=False, error=str(exc)[:2000])]
    instructions = 0
    if not task.dry_run:
        await runs.store_charges(ctx.conn, task.period_id, roll, charges)
        batches = await asyncio.to_thread(
            _debit_batches, task, roll, charges.member_pays_fen.tolist(),
            ctx.resources.settings.instructions_per_batch,
            ctx.envelope.correlationid or ctx.envelope.id)
        instructions, encoded = batches
        if ctx.producer is None:
            raise RuntimeError("the worker has no Kafka producer: is the service started?")
        await instruction_stream.send(ctx.producer, encoded)
    await runs.finish_task(ctx.conn, plan, charges, instructions)
    log.info("shard priced", period_id=task.period_id, task_no=task.task_no,
             members=plan.member_count, debit_instructions=instructions,
             seconds=round(time.perf_counter() - started, 3), dry_run=task.dry_run)
    return [ShardCompleted(
        run_id=task.run_id, period_id=task.period_id, task_no=task.task_no, ok=True,
        members=plan.member_count, shares_fen=charges.shares_fen,
        paying_one_fen_more=charges.paying_one_fen_more,
        member_debits_fen=charges.member_debits_fen, subsidy_fen=charges.subsidy_fen,
        debit_instructions=instructions)]


def _plan(task: ShardAssigned) -> ShardPlan:
    return ShardPlan(period_id=task.period_id, task_no=task.task_no,
                     bucket_lo=task.bucket_lo, bucket_hi=task.bucket_hi,
                     members=task.members, extras=task.extras,
                     base_share_fen=task.base_share_fen, cases=task.cases,
                     annual_cap_fen=task.annual_cap.amount_fen if task.annual_cap else None,
                     per_case_cap_fen=(task.per_case_cap.amount_fen if task.per_case_cap
                                       else None),
                     operator_pays_joined_before=task.operator_pays_joined_before)


def _debit_batches(task: ShardAssigned, roll: RollSlice, pays: list[int], size: int,
                   correlationid: str) -> tuple[int, list[tuple[bytes, bytes]]]:
    by_bucket = debits(roll, pays)
    encoded = instruction_stream.debit_batches(
        task.period_id, by_bucket, size=size, source="mutualaid/billing",
        correlationid=correlationid)
    return sum(len(p) for p in by_bucket.values()), encoded
