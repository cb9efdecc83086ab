"""Thin translators for publicity rounds, objections and sharing notices."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts import Event
from mutualaid.contracts.billing import SharingAnnounced
from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.membership import (
    MEMBER_EXITS, MemberExit, MemberJoined, MemberTransferred)
from mutualaid.contracts.publicity import (
    CaseDisputed, ClosePublicityRound, FileObjection, OpenPublicityRound)
from mutualaid.errors import Rejected
from mutualaid.runtime import HandlerContext, Router

from .adapters import notices as notice_repo
from .adapters import repository as repo
from .domain import calendar, notices, rules
from .resources import PublicityResources

router = Router("publicity")


@router.command(OpenPublicityRound)
async def open_round(cmd: OpenPublicityRound, ctx: HandlerContext) -> Sequence[Event]:
    res: PublicityResources = ctx.resources
    waiting = await repo.waiting_cases(ctx.conn, cmd.round_date)
    rnd, events = rules.open_round(cmd.round_date, await repo.get_round(ctx.conn, cmd.round_date),
                                   waiting, terms=calendar.terms_on(res.rulebook, cmd.round_date))
    await repo.save_round(ctx.conn, rnd, [c.case_id for c in waiting])
    res.metrics.rounds.labels("opened").inc()
    res.metrics.cases_published.inc(len(waiting))
    return events


@router.command(ClosePublicityRound)
async def close_round(cmd: ClosePublicityRound, ctx: HandlerContext) -> Sequence[Event]:
    res: PublicityResources = ctx.resources
    rnd = await repo.get_round(ctx.conn, cmd.round_date)
    events = rules.close_round(rnd, cmd.round_date,
                               await repo.objection_counts(ctx.conn, cmd.round_date),
                               closed_on=cmd.closed_on)
    assert rnd is not None  # close_round refused a missing round
    await repo.save_round(ctx.conn, rules.closed(rnd, cmd.closed_on), [])
    disputed = sum(isinstance(e, CaseDisputed) for e in events)
    res.metrics.rounds.labels("closed").inc()
    res.metrics.cases_decided.labels("disputed").inc(disputed)
    res.metrics.cases_decided.labels("passed").inc(len(events) - 1 - disputed)
    return events


@router.command(FileObjection)
async def file_objection(cmd: FileObjection, ctx: HandlerContext) -> Sequence[Event]:
    res: PublicityResources = ctx.resources
    case = await repo.get_case(ctx.conn, cmd.case_id)
    rnd = await repo.get_round(ctx.conn, case.round_date) if case and case.round_date else None
    try:
        filed = rules.object_to(
            cmd, case, rnd, await repo.objector(ctx.conn, cmd.member_id),
            already_objected=await repo.has_objected(ctx.conn, cmd.case_id, cmd.member_id),
            objection_id_taken=await repo.objection_id_taken(ctx.conn, cmd.objection_id))
    except Rejected as r:
        res.metrics.objections.labels(r.reason_code).inc()
        raise
    await repo.add_objection(ctx.conn, filed.objection_id, filed.case_id, filed.member_id,
                             filed.reason, filed.filed_on)
    res.metrics.objections.labels("filed").inc()
    return [filed]


@router.event(SharingAnnounced)
async def on_sharing_announced(evt: SharingAnnounced, ctx: HandlerContext) -> Sequence[Event]:
    notice = notices.public_notice(evt)
    if notice is None or not await notice_repo.add_notice(ctx.conn, notice):
        return []
    ctx.resources.metrics.sharing_notices.inc()
    return [notice]


@router.event(CaseReadyForPublicity)
async def on_case_ready(evt: CaseReadyForPublicity, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_case(ctx.conn, evt)
    return []


@router.events(MemberJoined, MemberTransferred)
async def on_member_active(evt: MemberJoined | MemberTransferred, ctx: HandlerContext
                           ) -> Sequence[Event]:
    # A transfer keeps (or, after coverage ended at the age limit, restores) membership.
    await repo.set_member(ctx.conn, evt.member_id, evt.payer_id, True)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_gone(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.set_member(ctx.conn, evt.member_id, evt.payer_id, False)
    return []
