"""Thin translators: load the case, ask the domain, persist, return events for the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts import Event
from mutualaid.contracts.claims import FileClaim, RecordInvestigation, ReviewClaim, WithdrawClaim
from mutualaid.contracts.claims import ClaimWithdrawn
from mutualaid.contracts.jury import JuryVerdict
from mutualaid.contracts.membership import MEMBER_EXITS, MemberExit, MemberJoined
from mutualaid.contracts.publicity import CaseDisputed, CasePublished, PublicityPassed
from mutualaid.errors import Rejected
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import rules
from .domain.model import State

router = Router("claims")


@router.command(FileClaim)
async def file_claim(cmd: FileClaim, ctx: HandlerContext) -> Sequence[Event]:
    if await repo.get(ctx.conn, cmd.case_id) is not None:
        raise Rejected("CASE_ID_TAKEN", f"case {cmd.case_id} already exists")
    case, events = rules.file(
        cmd, await repo.coverage(ctx.conn, cmd.member_id), rulebook=ctx.resources.rulebook,
        member_has_open_or_paid_case=await repo.member_has_case(ctx.conn, cmd.member_id))
    await repo.save(ctx.conn, case, events)
    return events


@router.command(RecordInvestigation)
async def record_investigation(cmd: RecordInvestigation, ctx: HandlerContext
                               ) -> Sequence[Event]:
    case, events = rules.investigate(cmd, await repo.get(ctx.conn, cmd.case_id))
    await repo.save(ctx.conn, case, events)
    return events


@router.command(ReviewClaim)
async def review_claim(cmd: ReviewClaim, ctx: HandlerContext) -> Sequence[Event]:
    current = await repo.get(ctx.conn, cmd.case_id)
    cover = await repo.coverage(ctx.conn, current.member_id) if current else None
    if current is not None and cover is None:
        raise Rejected("NOT_A_MEMBER", "the claimant's membership is unknown")
    case, events = rules.review(cmd, current, cover)  # type: ignore[arg-type]
    await repo.save(ctx.conn, case, events)
    return events


@router.command(WithdrawClaim)
async def withdraw_claim(cmd: WithdrawClaim, ctx: HandlerContext) -> Sequence[Event]:
    case = rules.withdraw(cmd.case_id, await repo.get(ctx.conn, cmd.case_id))
    events = [ClaimWithdrawn(case_id=case.case_id, member_id=case.member_id,
                             withdrawn_on=cmd.withdrawn_on)]
    await repo.save(ctx.conn, case, events)
    return events


@router.event(MemberJoined)
async def on_member_joined(evt: MemberJoined, ctx: HandlerContext) -> Sequence[Event]:
    await repo.save_coverage(ctx.conn, evt)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_gone(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.end_coverage(ctx.conn, evt.member_id)
    return []


@router.event(CasePublished)
async def on_case_published(evt: CasePublished, ctx: HandlerContext) -> Sequence[Event]:
    case = rules.published(await repo.get(ctx.conn, evt.case_id))
    if case is not None:
        await repo.save(ctx.conn, case, [evt])
    return []


@router.event(CaseDisputed)
async def on_case_disputed(evt: CaseDisputed, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get(ctx.conn, evt.case_id)
    if case is not None and case.state is State.PUBLISHED:
        await repo.save(ctx.conn, case.moved(State.DISPUTED), [evt])
    return []


@router.event(PublicityPassed)
async def on_publicity_passed(evt: PublicityPassed, ctx: HandlerContext) -> Sequence[Event]:
    return await _settle(ctx, evt.case_id, rules.approve(await repo.get(ctx.conn, evt.case_id),
                                                         evt.passed_on))


@router.event(JuryVerdict)
async def on_jury_verdict(evt: JuryVerdict, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get(ctx.conn, evt.case_id)
    day = evt.decided_at.date()
    return await _settle(ctx, evt.case_id, rules.approve(case, day) if evt.approved
                         else rules.refuse_after_jury(case, day))


async def _settle(ctx: HandlerContext, case_id: str,
                  outcome: tuple[object, list[Event]] | None) -> Sequence[Event]:
    if outcome is None:
        return []
    case, events = outcome
    await repo.save(ctx.conn, case, events)  # type: ignore[arg-type]
    return events
