"""Thin translators for publicity rounds and objections."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts import Event
from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.membership import MEMBER_EXITS, MemberExit, MemberJoined
from mutualaid.contracts.publicity import ClosePublicityRound, FileObjection, OpenPublicityRound
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import rules

router = Router("publicity")


@router.command(OpenPublicityRound)
async def open_round(cmd: OpenPublicityRound, ctx: HandlerContext) -> Sequence[Event]:
    window = ctx.resources.rulebook.plan_on("critical_illness", cmd.round_date
                                            ).objection_window_days
    waiting = await repo.waiting_cases(ctx.conn, cmd.round_date)
    rnd, events = rules.open_round(cmd.round_date, await repo.get_round(ctx.conn, cmd.round_date),
                                   waiting, objection_window_days=window)
    await repo.save_round(ctx.conn, rnd, [c.case_id for c in waiting])
    return events


@router.command(ClosePublicityRound)
async def close_round(cmd: ClosePublicityRound, ctx: HandlerContext) -> Sequence[Event]:
    rnd = await repo.get_round(ctx.conn, cmd.round_date)
    events = rules.close_round(rnd, cmd.round_date,
                               await repo.objection_counts(ctx.conn, cmd.round_date))
    assert rnd is not None  # close_round refused a missing round
    await repo.save_round(ctx.conn, type(rnd)(rnd.round_date, rnd.objection_deadline, True), [])
    return events


@router.command(FileObjection)
async def file_objection(cmd: FileObjection, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get_case(ctx.conn, cmd.case_id)
    rnd = await repo.get_round(ctx.conn, case.round_date) if case and case.round_date else None
    filed = rules.object_to(cmd, case, rnd, await repo.objector(ctx.conn, cmd.member_id),
                            already_objected=await repo.has_objected(ctx.conn, cmd.case_id,
                                                                     cmd.member_id))
    await repo.add_objection(ctx.conn, filed.objection_id, filed.case_id, filed.member_id,
                             filed.reason, filed.filed_on)
    return [filed]


@router.event(CaseReadyForPublicity)
async def on_case_ready(evt: CaseReadyForPublicity, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_case(ctx.conn, evt)
    return []


@router.event(MemberJoined)
async def on_member_joined(evt: MemberJoined, ctx: HandlerContext) -> Sequence[Event]:
    await repo.set_member(ctx.conn, evt.member_id, evt.payer_id, True)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_gone(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.set_member(ctx.conn, evt.member_id, evt.payer_id, False)
    return []
