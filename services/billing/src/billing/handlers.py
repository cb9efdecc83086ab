"""Thin translators for billing's coordinator: the roll and cases projections, the sharing
run's plan and completion, payment results and arrears. The shard workers' handler is in
``worker``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import structlog

from mutualaid.contracts import Event
from mutualaid.contracts.billing import (
    ArrearsSettled, Cap, PayerArrearsLimitReached, PaymentFailed, PaymentInstruction,
    PaymentInstructionBatch, PaymentSucceeded, PlanTotals, RunSharingPeriod, SettleArrears,
    ShardAssigned, ShardCompleted, SharingAnnounced, SharingPeriodCompleted, SharingRunFailed,
    SharingRunStarted)
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.common import PLANS
from mutualaid.contracts.membership import (
    MEMBER_EXITS, MemberExit, MemberJoined, MemberTransferred, exit_date)
from mutualaid.contracts.rejection import ReasonCode
from mutualaid.errors import Rejected
from mutualaid.rulebook import Rulebook, RulebookError, RuleLookupError, parse_rulebook
from mutualaid.runtime import BatchContext, BatchOutcome, HandlerContext, Router

from .adapters import repository as repo
from .adapters import runs
from .domain import arrears
from .domain import instructions as ins
from .domain.arrears import DebitStatus
from .domain.shards import ShardPlan, plan_period
from .domain.sharing import MoneyEquationBroken

router = Router("billing")
log = structlog.get_logger(__name__)


@router.command(RunSharingPeriod)
async def run_sharing_period(cmd: RunSharingPeriod, ctx: HandlerContext) -> Sequence[Event]:
    """Plan the run: fix each period's cases, roll (as of now), total and shard figures,
    and hand the shards to the workers. The notice and instructions follow per period as
    the shards come back (``on_shard_completed``)."""
    try:
        version = _rulebook(cmd, ctx).version_on(cmd.sharing_date)
    except RuleLookupError as exc:  # a date before any rules (the fuzz sent year 1)
        raise Rejected("INVALID_DATE", str(exc)) from None
    run_id = ctx.envelope.id
    run_started = False
    roll_seq = await runs.snapshot_roll(ctx.conn)
    tasks: list[Event] = []
    period_ids: list[str] = []
    members = 0
    for plan_id in cmd.plans or PLANS:
        plan = version.plan(plan_id)
        try:
            roll_date = plan.roll_date(cmd.sharing_date)
        except ValueError as exc:
            raise Rejected("NOT_A_SHARING_DAY", str(exc)) from None
        period_id = (f"{cmd.sharing_date.isoformat()}/{plan_id}" if not cmd.dry_run
                     else f"preview/{run_id}/{plan_id}")
        existing = None if cmd.dry_run else await runs.period(ctx.conn, period_id, lock=True)
        if existing is not None:
            if existing.status == "completed":
                log.info("period already shared", period_id=period_id)
                continue
            tasks += await _resume(ctx, existing)
            period_ids.append(period_id)
            members += existing.members_sharing
            continue
        previous = await runs.previous_period(ctx.conn, plan_id, cmd.sharing_date)
        if previous is not None and previous[1] != "completed":
            raise Rejected("PREVIOUS_PERIOD_OPEN", f"{previous[0]} is {previous[1]}: it must "
                           "complete before a later period of the plan is shared")
        cases = await repo.unshared_cases(ctx.conn, plan_id, cmd.sharing_date)
        counts = await runs.bucket_counts(ctx.conn, plan_id, roll_date, roll_seq)
        benefits = sum(c.benefit_fen for c in cases)
        fee = plan.management_fee_fen(benefits)
        shard_plan = plan_period(period_id, benefits + fee, counts,
                                 tasks=ctx.resources.settings.shard_tasks, cases=len(cases),
                                 plan=plan, sharing_date=cmd.sharing_date)
        if not run_started:
            await runs.create_run(ctx.conn, run_id, cmd.sharing_date, cmd.dry_run)
            run_started = True
        await runs.start_period(
            ctx.conn, run_id=run_id, period_id=period_id, plan=plan_id,
            sharing_date=cmd.sharing_date, roll_date=roll_date, rule_version=version.version,
            case_ids=[c.case_id for c in cases], benefits_fen=benefits, fee_fen=fee,
            dry_run=cmd.dry_run, roll_seq=roll_seq,
            previous_period_id=previous[0] if previous else None, shard_plan=shard_plan)
        log.info("sharing period started", period_id=period_id, cases=len(cases),
                 members=shard_plan.members, shards=len(shard_plan.shards),
                 dry_run=cmd.dry_run)
        period_ids.append(period_id)
        members += shard_plan.members
        tasks += _assign(run_id, period_id, plan_id, cmd.sharing_date, roll_date, roll_seq,
                         previous[0] if previous else None, shard_plan.shards, cmd.dry_run)
    if not period_ids:
        raise Rejected(ReasonCode.ALREADY_APPLIED,
                       f"every plan was already shared on {cmd.sharing_date}")
    return [SharingRunStarted(run_id=run_id, sharing_date=cmd.sharing_date,
                              period_ids=tuple(period_ids), members_sharing=members,
                              shards=len(tasks), dry_run=cmd.dry_run), *tasks]


def _cap(amount_fen: int | None) -> Cap | None:
    return None if amount_fen is None else Cap(amount_fen=amount_fen)


def _rulebook(cmd: RunSharingPeriod, ctx: HandlerContext) -> Rulebook:
    if cmd.draft_rulebook is None:
        return ctx.resources.rulebook  # type: ignore[no-any-return]
    if not cmd.dry_run:
        raise Rejected("DRAFT_RULEBOOK_NEEDS_DRY_RUN",
                       "a draft rulebook prices a preview only: set dry_run")
    try:
        return parse_rulebook(cmd.draft_rulebook)
    except RulebookError as exc:
        raise Rejected("DRAFT_RULEBOOK_INVALID", str(exc)[:1000]) from None


def _assign(run_id: str, period_id: str, plan_id: str, sharing_date: date, roll_date: date,
            roll_seq: int, previous_period_id: str | None, shards: Sequence[ShardPlan],
            dry_run: bool) -> list[Event]:
    return [ShardAssigned(
        shard_id=f"{period_id}#{s.task_no}", run_id=run_id, period_id=period_id,
        plan=plan_id, sharing_date=sharing_date, roll_date=roll_date,  # type: ignore[arg-type]
        roll_seq=roll_seq, previous_period_id=previous_period_id, task_no=s.task_no,
        bucket_lo=s.bucket_lo, bucket_hi=s.bucket_hi, members=s.members, extras=s.extras,
        base_share_fen=s.base_share_fen, cases=s.cases, annual_cap=_cap(s.annual_cap_fen),
        per_case_cap=_cap(s.per_case_cap_fen),
        operator_pays_joined_before=s.operator_pays_joined_before, dry_run=dry_run)
        for s in shards]


async def _resume(ctx: HandlerContext, period: runs.PeriodRow) -> list[Event]:
    """A period that failed or stalled runs on with the very figures it started with (the
    same roll snapshot, cases, rules and shards), so the shards already done and the
    instructions already sent stay right; only the shards not done are assigned again."""
    plan = ctx.resources.rulebook.version(period.rule_version).plan(period.plan)
    counts = await runs.bucket_counts(ctx.conn, period.plan, period.roll_date, period.roll_seq)
    states = await runs.task_states(ctx.conn, period.period_id)
    shard_plan = plan_period(period.period_id, period.total_fen, counts, tasks=len(states),
                             cases=period.cases, plan=plan, sharing_date=period.sharing_date)
    if [s.member_count for s in shard_plan.shards] != [states[n][0] for n in sorted(states)]:
        raise MoneyEquationBroken(f"{period.period_id}: the roll snapshot no longer gives the "
                                  "shards the period started with")
    await runs.resume_period(ctx.conn, period.period_id, period.run_id)
    log.warning("sharing period resumed", period_id=period.period_id, status=period.status,
                shards_left=sum(1 for _, st in states.values() if st != "done"))
    todo = [s for s in shard_plan.shards if states[s.task_no][1] != "done"]
    return _assign(period.run_id or "", period.period_id, period.plan, period.sharing_date,
                   period.roll_date, period.roll_seq, period.previous_period_id, todo,
                   period.dry_run)


@router.event(ShardCompleted)
async def on_shard_completed(evt: ShardCompleted, ctx: HandlerContext) -> Sequence[Event]:
    """Once every shard of a period is in: add the shard totals up again, then publish the
    notice and the credits; once every period of the run is in, the run's totals."""
    period = await runs.period(ctx.conn, evt.period_id, lock=True)
    if period is None or period.status != "running":
        return []
    if not evt.ok:
        return await _fail(ctx, period, f"shard {evt.task_no}: {evt.error}")
    totals = await runs.task_totals(ctx.conn, evt.period_id)
    log.info("sharing run progress", period_id=period.period_id, shards_done=totals.done,
             shards=totals.tasks, members_priced=totals.members)
    if totals.done < totals.tasks:
        return []
    try:
        reconcile_period(period, totals)
    except MoneyEquationBroken as exc:
        return await _fail(ctx, period, str(exc))
    subsidy = totals.subsidy_fen + (period.total_fen if not totals.members else 0)
    if not period.dry_run:
        await runs.index_payers(ctx.conn, period.period_id)
    await runs.complete_period(ctx.conn, period.period_id, totals.member_debits_fen, subsidy)
    log.info("sharing period completed", period_id=period.period_id,
             members=totals.members, member_debits_fen=totals.member_debits_fen,
             subsidy_fen=subsidy, debit_instructions=totals.debit_instructions)
    events: list[Event] = [SharingAnnounced(
        period_id=period.period_id, plan=period.plan, sharing_date=period.sharing_date,
        roll_date=period.roll_date, rule_version=period.rule_version, cases=period.cases,
        case_ids=tuple(period.case_ids), benefits_fen=period.benefits_fen,
        fee_fen=period.fee_fen, total_fen=period.total_fen,
        members_sharing=period.members_sharing, base_share_fen=period.base_share_fen,
        members_paying_one_fen_more=period.paying_one_fen_more,
        member_debits_fen=totals.member_debits_fen, subsidy_fen=subsidy,
        dry_run=period.dry_run)]
    if not period.dry_run:
        events += await _credits(ctx, period)
    return [*events, *await _run_finished(ctx, period.run_id)]


def reconcile_period(period: runs.PeriodRow, totals: runs.TaskTotals) -> None:
    """The period's books from the shards' stored totals, against the period's own
    figures: the equation checked a second time, independently of the workers."""
    where = period.period_id
    if totals.members != period.members_sharing:
        raise MoneyEquationBroken(f"{where}: {totals.members} members priced, "
                                  f"{period.members_sharing} on the roll")
    if totals.members and totals.shares_fen != period.total_fen:
        raise MoneyEquationBroken(f"{where}: shares {totals.shares_fen} != total "
                                  f"{period.total_fen}")
    if totals.paying_one_fen_more != period.paying_one_fen_more:
        raise MoneyEquationBroken(f"{where}: {totals.paying_one_fen_more} members pay the "
                                  f"extra fen, not {period.paying_one_fen_more}")
    subsidy = totals.subsidy_fen + (period.total_fen if not totals.members else 0)
    if totals.member_debits_fen + subsidy != period.benefits_fen + period.fee_fen:
        raise MoneyEquationBroken(f"{where}: debits + subsidy != benefits + fee")


async def _fail(ctx: HandlerContext, period: runs.PeriodRow, reason: str) -> list[Event]:
    log.error("sharing period failed: nothing more is emitted for it",
              period_id=period.period_id, reason=reason)
    await runs.fail_period(ctx.conn, period.period_id, reason)
    return [SharingRunFailed(run_id=period.run_id or "", period_id=period.period_id,
                             reason=reason[:2000]),
            *await _run_finished(ctx, period.run_id)]


async def _credits(ctx: HandlerContext, period: runs.PeriodRow) -> list[Event]:
    cases = await repo.period_cases(ctx.conn, period.period_id)
    credits = [PaymentInstruction(
        instruction_id=ins.instruction_id(period.period_id, "credit", c.case_id),
        kind="credit", period_id=period.period_id, account_id=c.member_id,
        amount_fen=c.benefit_fen, case_id=c.case_id) for c in cases]
    if sum(c.amount_fen for c in credits) != period.benefits_fen:
        raise MoneyEquationBroken(f"{period.period_id}: credits do not equal the benefits")
    await repo.save_credits(ctx.conn, credits)
    return [PaymentInstructionBatch(period_id=period.period_id, shard=key, batch_no=n,
                                    instructions=tuple(items))
            for n, (key, items) in enumerate(ins.batches(
                credits, size=ctx.resources.settings.instructions_per_batch))]


async def _run_finished(ctx: HandlerContext, run_id: str | None) -> list[Event]:
    if run_id is None:
        return []
    run = await runs.run_periods(ctx.conn, run_id)
    if any(status == "running" for _, status in run.periods):
        return []
    failed = [p for p, status in run.periods if status == "failed"]
    await runs.finish_run(ctx.conn, run_id, "failed" if failed else "completed")
    if failed:
        return []
    totals = await runs.run_totals(ctx.conn, run_id)
    dry_run = run.dry_run
    return [SharingPeriodCompleted(sharing_date=run.sharing_date, dry_run=dry_run, plans=tuple(
        PlanTotals(plan=t.plan, period_id=t.period_id, benefits_fen=t.benefits_fen,
                   fee_fen=t.fee_fen, member_debits_fen=t.member_debits_fen,
                   subsidy_fen=t.subsidy_fen, debit_instructions=t.debit_instructions,
                   credit_instructions=0 if dry_run else t.cases) for t in totals))]


@router.command(SettleArrears)
async def settle_arrears(cmd: SettleArrears, ctx: HandlerContext) -> Sequence[Event]:
    owed = await repo.open_arrears(ctx.conn, cmd.payer_id)
    if not owed:
        raise Rejected("NO_ARREARS", f"payer {cmd.payer_id} owes nothing")
    total = sum(amount for _, _, amount in owed)
    if cmd.amount_fen != total:
        raise Rejected("AMOUNT_MISMATCH", f"payer owes {total} fen, not {cmd.amount_fen}")
    await repo.settle(ctx.conn, [i for i, _, _ in owed], cmd.settled_on)
    return [ArrearsSettled(payer_id=cmd.payer_id, period_ids=tuple(p for _, p, _ in owed),
                           amount_fen=total, settled_on=cmd.settled_on)]


async def _open_instruction(ctx: HandlerContext, instruction_id: str, result: str
                            ) -> repo.InstructionRow | None:
    """The instruction a result is for, if billing issued it and it is still waiting for a
    result: unknown and repeated results are logged and ignored, never counted twice."""
    parsed = ins.parse_instruction_id(instruction_id)
    row = None
    if parsed is not None:
        period_id, kind, party = parsed
        row = (await repo.debit(ctx.conn, instruction_id, period_id, party) if kind == "debit"
               else await repo.credit(ctx.conn, instruction_id))
    if row is None:
        log.warning("payment result for an unknown instruction ignored",
                    instruction_id=instruction_id, result=result)
        return None
    if row.status != DebitStatus.SENT:
        log.info("repeated payment result ignored", instruction_id=instruction_id,
                 result=result, recorded=row.status)
        return None
    return row


@router.event(PaymentSucceeded)
async def on_payment_succeeded(evt: PaymentSucceeded, ctx: HandlerContext) -> Sequence[Event]:
    row = await _open_instruction(ctx, evt.instruction_id, "succeeded")
    if row is None:
        return []
    if evt.amount_fen != row.amount_fen:
        log.warning("payment amount differs from the instruction; result ignored",
                    instruction_id=row.instruction_id, instructed_fen=row.amount_fen,
                    paid_fen=evt.amount_fen)
        return []
    await repo.record_result(ctx.conn, row, DebitStatus.PAID, evt.settled_at)
    return []


@router.event(PaymentFailed)
async def on_payment_failed(evt: PaymentFailed, ctx: HandlerContext) -> Sequence[Event]:
    row = await _open_instruction(ctx, evt.instruction_id, "failed")
    if row is None:
        return []
    await repo.record_result(ctx.conn, row, DebitStatus.FAILED, evt.failed_at, evt.reason)
    if row.kind != "debit":
        log.error("a benefit credit failed: operators must pay the claimant",
                  instruction_id=row.instruction_id, reason=evt.reason)
        return []
    debits = await repo.payer_debits(ctx.conn, row.account_id)
    streak = arrears.failed_streak(debits)
    first_failure_that_day = sum(
        1 for d in debits if d.sharing_date == row.sharing_date
        and d.status is DebitStatus.FAILED and not d.settled) == 1
    limit = ctx.resources.rulebook.version_on(row.sharing_date).plan(
        row.plan).arrears_limit_periods
    if (row.period_id in streak and first_failure_that_day
            and arrears.limit_just_reached(arrears.dates_in(debits, streak), limit)):
        log.warning("payer reached the arrears limit", payer_id=row.account_id,
                    failed_periods=streak)
        return [PayerArrearsLimitReached(payer_id=row.account_id,
                                         failed_periods=tuple(sorted(streak)),
                                         reached_on=evt.failed_at.date())]
    return []


# The roll projection: membership's events, a consumed batch at a time (a plan of 100
# million members sends millions of them on a busy day). Each write is a no-op when
# repeated (a join inserts once, an exit sets left_on once, a transfer moves once), so the
# inbox does not record these events.

@router.event_batch(MemberJoined, idempotent=True)
async def on_members_joined(events: Sequence[MemberJoined], ctx: BatchContext
                            ) -> Sequence[BatchOutcome]:
    await repo.add_roll_members(ctx.conn, events)
    return [()] * len(events)


@router.event_batch(*MEMBER_EXITS, idempotent=True)
async def on_member_exits(events: Sequence[MemberExit], ctx: BatchContext
                          ) -> Sequence[BatchOutcome]:
    await repo.remove_roll_members(ctx.conn, [(e.member_id, e.payer_id, exit_date(e))
                                              for e in events])
    return [()] * len(events)


@router.event_batch(MemberTransferred, idempotent=True)
async def on_members_transferred(events: Sequence[MemberTransferred], ctx: BatchContext
                                 ) -> Sequence[BatchOutcome]:
    for e in events:  # rare (a member reaching 60): one statement each keeps it simple
        await repo.transfer_roll_member(ctx.conn, e.member_id, e.payer_id, e.to_plan)
    return [()] * len(events)


@router.event(CaseApproved)
async def on_case_approved(evt: CaseApproved, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_case(ctx.conn, evt)
    return []
