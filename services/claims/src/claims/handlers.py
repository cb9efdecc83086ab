"""Thin translators: load the case, ask the domain, persist, return events for the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts import Event
from mutualaid.contracts.claims import (
    AppealClaim, CaseHistoryEntry, CaseHistoryReported, ClaimWithdrawn, FileClaim,
    RecordInvestigation, ReportCaseHistory, ReviewClaim, StartInvestigation, WithdrawClaim)
from mutualaid.contracts.jury import JuryCaseOpened, JuryVerdict
from mutualaid.contracts.membership import (
    MEMBER_EXITS, MemberErased, MemberExit, MemberJoined, MemberTransferred, exit_date)
from mutualaid.contracts.publicity import CaseDisputed, CasePublished, PublicityPassed
from mutualaid.errors import Rejected
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import rules
from .domain.model import Case

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


@router.command(StartInvestigation)
async def start_investigation(cmd: StartInvestigation, ctx: HandlerContext
                              ) -> Sequence[Event]:
    return await _saved(ctx, rules.start_investigation(cmd, await repo.get(ctx.conn,
                                                                           cmd.case_id)))


@router.command(RecordInvestigation)
async def record_investigation(cmd: RecordInvestigation, ctx: HandlerContext
                               ) -> Sequence[Event]:
    return await _saved(ctx, rules.investigate(cmd, await repo.get(ctx.conn, cmd.case_id)))


@router.command(ReviewClaim)
async def review_claim(cmd: ReviewClaim, ctx: HandlerContext) -> Sequence[Event]:
    current = await repo.get(ctx.conn, cmd.case_id)
    cover = await repo.coverage(ctx.conn, current.member_id) if current else None
    if current is not None and cover is None:
        raise Rejected("NOT_A_MEMBER", "the claimant's membership is unknown")
    return await _saved(ctx, rules.review(cmd, current, cover))  # type: ignore[arg-type]


@router.command(WithdrawClaim)
async def withdraw_claim(cmd: WithdrawClaim, ctx: HandlerContext) -> Sequence[Event]:
    case = rules.withdraw(cmd.case_id, await repo.get(ctx.conn, cmd.case_id))
    return await _saved(ctx, (case, [ClaimWithdrawn(case_id=case.case_id,
                                                    member_id=case.member_id,
                                                    withdrawn_on=cmd.withdrawn_on)]))


@router.command(AppealClaim)
async def appeal_claim(cmd: AppealClaim, ctx: HandlerContext) -> Sequence[Event]:
    return await _saved(ctx, rules.appeal(cmd, await repo.get(ctx.conn, cmd.case_id)))


@router.command(ReportCaseHistory)
async def report_case_history(cmd: ReportCaseHistory, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get(ctx.conn, cmd.case_id)
    if case is None:
        raise Rejected("UNKNOWN_CASE", f"no case {cmd.case_id}")
    return [CaseHistoryReported(
        case_id=case.case_id, state=case.state.value, rule_version=case.rule_version,
        entries=tuple(CaseHistoryEntry(event_type=t, recorded_at=at, detail=detail)
                      for t, detail, at in await repo.history(ctx.conn, cmd.case_id)))]


@router.event(MemberJoined)
async def on_member_joined(evt: MemberJoined, ctx: HandlerContext) -> Sequence[Event]:
    await repo.save_coverage(ctx.conn, evt)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_gone(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.end_coverage(ctx.conn, evt.member_id, exit_date(evt))
    return []


@router.event(MemberErased)
async def on_member_erased(evt: MemberErased, ctx: HandlerContext) -> Sequence[Event]:
    await repo.forget_person(ctx.conn, evt.member_id)
    return []


@router.event(MemberTransferred)
async def on_member_transferred(evt: MemberTransferred, ctx: HandlerContext
                                ) -> Sequence[Event]:
    await repo.transfer_coverage(ctx.conn, evt.member_id, evt.to_plan)
    return []


@router.event(CasePublished)
async def on_case_published(evt: CasePublished, ctx: HandlerContext) -> Sequence[Event]:
    return await _recorded(ctx, rules.published(await repo.get(ctx.conn, evt.case_id)), evt)


@router.event(CaseDisputed)
async def on_case_disputed(evt: CaseDisputed, ctx: HandlerContext) -> Sequence[Event]:
    return await _recorded(ctx, rules.disputed(await repo.get(ctx.conn, evt.case_id)), evt)


@router.event(JuryCaseOpened)
async def on_jury_case_opened(evt: JuryCaseOpened, ctx: HandlerContext) -> Sequence[Event]:
    return await _recorded(ctx, rules.before_jury(await repo.get(ctx.conn, evt.case_id)), evt)


@router.event(PublicityPassed)
async def on_publicity_passed(evt: PublicityPassed, ctx: HandlerContext) -> Sequence[Event]:
    outcome = rules.approve(await repo.get(ctx.conn, evt.case_id), evt.passed_on)
    return await _saved(ctx, outcome) if outcome else []


@router.event(JuryVerdict)
async def on_jury_verdict(evt: JuryVerdict, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get(ctx.conn, evt.case_id)
    cover = await repo.coverage(ctx.conn, case.member_id) if case else None
    outcome = rules.jury_decided(case, evt.approved, evt.decided_at.date(), cover)
    if outcome is None:
        return []
    await repo.save(ctx.conn, outcome[0], [evt, *outcome[1]])
    return outcome[1]


async def _saved(ctx: HandlerContext, outcome: tuple[Case, list[Event]]) -> Sequence[Event]:
    case, events = outcome
    await repo.save(ctx.conn, case, events)
    return events


async def _recorded(ctx: HandlerContext, case: Case | None, cause: Event) -> Sequence[Event]:
    """A state change caused by another service's event: recorded in the case log too."""
    if case is not None:
        await repo.save(ctx.conn, case, [cause])
    return []
