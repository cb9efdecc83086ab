"""Thin translators for the member jury."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import structlog

from mutualaid.contracts import Event
from mutualaid.contracts.claims import CaseRejected, ClaimAppealed, ClaimFiled
from mutualaid.contracts.jury import CastVote, CloseVoting, QualifyJuror, VoteCast
from mutualaid.contracts.membership import MEMBER_EXITS, MemberExit, MemberJoined
from mutualaid.contracts.publicity import CaseDisputed, ObjectionFiled
from mutualaid.errors import Rejected
from mutualaid.runtime import BatchContext, BatchOutcome, HandlerContext, Router

from .adapters import cases, votes
from .adapters import repository as repo
from .domain import panel, rules
from .domain.model import JuryCase

router = Router("jury")
log = structlog.get_logger(__name__)


@router.command(QualifyJuror)
async def qualify_juror(cmd: QualifyJuror, ctx: HandlerContext) -> Sequence[Event]:
    qualified = rules.qualify(cmd, await repo.candidate(ctx.conn, cmd.member_id),
                              has_fraud_record=await repo.has_fraud_record(ctx.conn,
                                                                           cmd.member_id))
    await repo.save_juror(ctx.conn, cmd.member_id, cmd.exam_score, cmd.qualified_on)
    return [qualified]


@router.command_batch(CastVote)
async def cast_votes(cmds: Sequence[CastVote], ctx: BatchContext) -> Sequence[BatchOutcome]:
    open_cases = await cases.open_for_votes(ctx.conn, {c.case_id for c in cmds})
    members, qualified = await repo.voters(ctx.conn, {c.juror_id for c in cmds})
    standing = await votes.standing(ctx.conn, [
        (c.case_id, open_cases[c.case_id].origin, c.juror_id) for c in cmds
        if c.case_id in open_cases])
    outcomes = rules.votes(cmds, open_cases, members, qualified, standing)
    casts = [o for o in outcomes if isinstance(o, VoteCast)]
    await votes.record(ctx.conn, casts, open_cases, rules.tally_deltas(casts, open_cases))
    return [o if isinstance(o, Rejected) else [o] for o in outcomes]


@router.command(CloseVoting)
async def close_voting(cmd: CloseVoting, ctx: HandlerContext) -> Sequence[Event]:
    case = await cases.current(ctx.conn, cmd.case_id)
    for_, against = await votes.tally(ctx.conn, case) if case else (0, 0)
    closed = rules.close(cmd, case, for_, against)
    events: list[Event] = [closed.event]
    after = closed.case
    if closed.redraw:
        seated = await cases.panel(ctx.conn, after)
        drawn = await _draw(ctx, after, seated, await votes.voted(ctx.conn, after, seated))
        if drawn is not None:
            after = drawn.case
            events.append(drawn.event)
    await cases.save(ctx.conn, after)
    return events


async def _draw(ctx: HandlerContext, case: JuryCase, seated: Sequence[str],
                voted: set[str]) -> panel.Draw | None:
    """Draw the next round of a panel and seat it; ``None`` if nobody could be drawn."""
    eligible = panel.eligible(case, await repo.juror_pool(ctx.conn, case.claimant_payer_id),
                              await repo.objectors(ctx.conn, case.case_id),
                              await cases.ever_seated(ctx.conn, case.case_id))
    drawn = panel.draw(case, eligible, panel=seated, voters=voted)
    if drawn is None:
        log.warning("no juror could be drawn; the case waits for the next close",
                    case_id=case.case_id, origin=case.origin, seated=len(seated))
        return None
    await cases.seat(ctx.conn, drawn.case, drawn.seated, drawn.released)
    return drawn


async def _open(ctx: HandlerContext, case_id: str, claimant: str, payer: str, plan: str,
                origin: str, on: date) -> Sequence[Event]:
    jury_rules = ctx.resources.rulebook.version_on(on).plan(plan).jury
    opened = rules.open_case(case_id, claimant, payer, on, jury_rules, origin=origin,
                             plan=plan, sittings=await cases.sittings(ctx.conn, case_id))
    if opened is None:
        return []
    case, event = opened
    events: list[Event] = [event]
    if case.mode == "panel":
        drawn = await _draw(ctx, case, (), set())
        if drawn is not None:
            case = drawn.case
            events.append(drawn.event)
    await cases.save(ctx.conn, case)
    return events


@router.event(CaseDisputed)
async def on_case_disputed(evt: CaseDisputed, ctx: HandlerContext) -> Sequence[Event]:
    parties = await repo.parties(ctx.conn, evt.case_id)
    if parties is None:
        # Never judge a case whose claimant is unknown: nobody could be excluded.
        log.warning("dispute held until the case's ClaimFiled arrives", case_id=evt.case_id)
        await repo.hold_dispute(ctx.conn, evt.case_id, evt.disputed_on)
        return []
    return await _open(ctx, evt.case_id, *parties, origin="dispute", on=evt.disputed_on)


@router.event(ClaimAppealed)
async def on_claim_appealed(evt: ClaimAppealed, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_parties(ctx.conn, evt.case_id, evt.member_id, evt.payer_id, evt.plan)
    return await _open(ctx, evt.case_id, evt.member_id, evt.payer_id, evt.plan,
                       origin="appeal", on=evt.appealed_on)


@router.event(ClaimFiled)
async def on_claim_filed(evt: ClaimFiled, ctx: HandlerContext) -> Sequence[Event]:
    await repo.add_parties(ctx.conn, evt.case_id, evt.member_id, evt.payer_id, evt.plan)
    held = await repo.release_held_dispute(ctx.conn, evt.case_id)
    if held is None:
        return []
    return await _open(ctx, evt.case_id, evt.member_id, evt.payer_id, evt.plan,
                       origin="dispute", on=held)


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
