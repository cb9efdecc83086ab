"""Thin translators for billing: the roll and cases projections, and the sharing run."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from mutualaid.contracts import Event
from mutualaid.contracts.billing import (
    ArrearsSettled, PayerArrearsLimitReached, PaymentFailed, PaymentInstructionBatch,
    PaymentSucceeded, PlanTotals, RunSharingPeriod, SettleArrears, SharingAnnounced,
    SharingPeriodCompleted)
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.common import PLANS
from mutualaid.contracts.membership import (
    MEMBER_EXITS, MemberExit, MemberJoined, MemberTransferred, exit_date)
from mutualaid.contracts.rejection import ReasonCode
from mutualaid.errors import Rejected
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import arrears
from .domain import instructions as ins
from .domain.arrears import DebitStatus
from .domain.sharing import share_period

router = Router("billing")
log = structlog.get_logger(__name__)


@router.command(RunSharingPeriod)
async def run_sharing_period(cmd: RunSharingPeriod, ctx: HandlerContext) -> Sequence[Event]:
    settings = ctx.resources.settings
    version = ctx.resources.rulebook.version_on(cmd.sharing_date)
    events: list[Event] = []
    totals: list[PlanTotals] = []
    for plan_id in cmd.plans or PLANS:
        plan = version.plan(plan_id)
        try:
            roll_date = plan.roll_date(cmd.sharing_date)
        except ValueError as exc:
            raise Rejected("NOT_A_SHARING_DAY", str(exc)) from None
        period_id = f"{cmd.sharing_date.isoformat()}/{plan_id}"
        if not cmd.dry_run and await repo.period_exists(ctx.conn, period_id):
            continue
        cases = await repo.unshared_cases(ctx.conn, plan_id, cmd.sharing_date)
        sharers = await repo.roll(ctx.conn, plan_id, roll_date, cmd.sharing_date.year)
        log.info("sharing period computing", period_id=period_id, cases=len(cases),
                 members=len(sharers), dry_run=cmd.dry_run)
        result = share_period(period_id, cmd.sharing_date, plan, cases, sharers)
        instructions = ins.build(result, cases)
        events.append(SharingAnnounced(
            period_id=period_id, plan=plan_id, sharing_date=cmd.sharing_date,
            roll_date=roll_date, rule_version=version.version, cases=len(cases),
            case_ids=tuple(c.case_id for c in cases), benefits_fen=result.benefits_fen,
            fee_fen=result.fee_fen, total_fen=result.total_fen, members_sharing=len(sharers),
            base_share_fen=result.base_share_fen,
            members_paying_one_fen_more=result.members_paying_one_fen_more,
            member_debits_fen=result.member_debits_fen, subsidy_fen=result.subsidy_fen,
            dry_run=cmd.dry_run))
        debits = sum(1 for i in instructions if i.kind == "debit")
        totals.append(PlanTotals(
            plan=plan_id, period_id=period_id, benefits_fen=result.benefits_fen,
            fee_fen=result.fee_fen, member_debits_fen=result.member_debits_fen,
            subsidy_fen=result.subsidy_fen, debit_instructions=debits,
            credit_instructions=len(instructions) - debits))
        if cmd.dry_run:
            continue
        await repo.save_period(ctx.conn, result=result, plan=plan_id,
                               sharing_date=cmd.sharing_date, roll_date=roll_date,
                               rule_version=version.version, cases=cases,
                               instructions=instructions)
        events += [PaymentInstructionBatch(period_id=period_id, shard=shard, batch_no=n,
                                           instructions=tuple(items))
                   for n, (shard, items) in enumerate(ins.batches(
                       instructions, shards=settings.shards,
                       size=settings.instructions_per_batch))]
    if not totals:
        raise Rejected(ReasonCode.ALREADY_APPLIED,
                       f"every plan was already shared on {cmd.sharing_date}")
    events.append(SharingPeriodCompleted(sharing_date=cmd.sharing_date, plans=tuple(totals),
                                         dry_run=cmd.dry_run))
    return events


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
    """The instruction a result is for, if it is known and still waiting for one: unknown
    and repeated results are logged and ignored, never counted twice."""
    row = await repo.instruction(ctx.conn, instruction_id)
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
    await repo.record_result(ctx.conn, row.instruction_id, DebitStatus.PAID, evt.settled_at)
    return []


@router.event(PaymentFailed)
async def on_payment_failed(evt: PaymentFailed, ctx: HandlerContext) -> Sequence[Event]:
    row = await _open_instruction(ctx, evt.instruction_id, "failed")
    if row is None:
        return []
    await repo.record_result(ctx.conn, row.instruction_id, DebitStatus.FAILED, evt.failed_at,
                             evt.reason)
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


@router.event(MemberJoined)
async def on_member_joined(evt: MemberJoined, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_roll_member(ctx.conn, evt)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_exit(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.remove_roll_member(ctx.conn, evt.member_id, exit_date(evt))
    return []


@router.event(MemberTransferred)
async def on_member_transferred(evt: MemberTransferred, ctx: HandlerContext
                                ) -> Sequence[Event]:
    await repo.transfer_roll_member(ctx.conn, evt.member_id, evt.to_plan)
    return []


@router.event(CaseApproved)
async def on_case_approved(evt: CaseApproved, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_case(ctx.conn, evt)
    return []
