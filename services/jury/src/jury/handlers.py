"""Thin translators for the member jury."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mutualaid.contracts import Event
from mutualaid.contracts.claims import CaseRejected, ClaimFiled
from mutualaid.contracts.jury import CastVote, CloseVoting, JuryVerdict, QualifyJuror
from mutualaid.contracts.membership import MEMBER_EXITS, MemberExit, MemberJoined
from mutualaid.contracts.publicity import CaseDisputed, ObjectionFiled
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import rules

router = Router("jury")


@router.command(QualifyJuror)
async def qualify_juror(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
    qualified = rules.qualify(cmd, await repo.candidate(ctx.conn, cmd.member_id),
                              has_fraud_record=await repo.has_fraud_record(ctx.conn,
                                                                           cmd.member_id))
    await repo.save_juror(ctx.conn, cmd.member_id, cmd.exam_score, cmd.qualified_on)
    return [qualified]


@router.command(CastVote)
async def cast_vote(cmd: CastVote, ctx: HandlerContext) -> Sequence[Event]:
    cast = rules.vote(cmd, await repo.get_case(ctx.conn, cmd.case_id),
                      await repo.candidate(ctx.conn, cmd.juror_id),
                      qualified=await repo.is_juror(ctx.conn, cmd.juror_id),
                      objected=await repo.objected(ctx.conn, cmd.case_id, cmd.juror_id),
                      already_voted=await repo.has_voted(ctx.conn, cmd.case_id, cmd.juror_id))
    await repo.add_vote(ctx.conn, cast)
    return [cast]


@router.command(CloseVoting)
async def close_voting(cmd: CloseVoting, ctx: HandlerContext) -> Sequence[Event]:
    case = await repo.get_case(ctx.conn, cmd.case_id)
    outcome = rules.tally(case, cmd.case_id, *await repo.counts(ctx.conn, cmd.case_id),
                          closed_at=cmd.closed_at)
    if case is not None and isinstance(outcome, JuryVerdict):
        await repo.save_case(ctx.conn, replace(case, decided=True))
    return [outcome]


@router.event(CaseDisputed)
async def on_case_disputed(evt: CaseDisputed, ctx: HandlerContext) -> Sequence[Event]:
    claimant, payer = await repo.parties(ctx.conn, evt.case_id) or ("", "")
    version = ctx.resources.rulebook.version_on(evt.disputed_on)
    case, opened = rules.open_case(evt.case_id, claimant, payer, evt.disputed_on,
                                   version.plan("critical_illness").jury)
    await repo.save_case(ctx.conn, case)
    return [opened]


@router.event(ClaimFiled)
async def on_claim_filed(evt: ClaimFiled, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_parties(ctx.conn, evt.case_id, evt.member_id, evt.payer_id)
    return []


@router.event(CaseRejected)
async def on_case_rejected(evt: CaseRejected, ctx: HandlerContext) -> Sequence[Event]:
    if evt.reason_code.upper() == "FRAUD":
        await repo.add_fraud_record(ctx.conn, evt.member_id)
    return []


@router.event(ObjectionFiled)
async def on_objection(evt: ObjectionFiled, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_objector(ctx.conn, evt.case_id, evt.member_id)
    return []


@router.event(MemberJoined)
async def on_member_joined(evt: MemberJoined, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_member(ctx.conn, evt)
    return []


@router.events(*MEMBER_EXITS)
async def on_member_gone(evt: MemberExit, ctx: HandlerContext) -> Sequence[Event]:
    await repo.deactivate(ctx.conn, evt.member_id)
    return []
