"""Thin translators: load state, ask the domain, persist, return events for the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts import Event
from mutualaid.contracts.billing import PayerArrearsLimitReached
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.membership import JoinPlan, LeavePlan, TransferPlan
from mutualaid.errors import Rejected
from mutualaid.identity import id_hash
from mutualaid.runtime import HandlerContext, Router

from .adapters import repository as repo
from .domain import rules
from .domain.model import Status

router = Router("membership")


@router.command(JoinPlan)
async def join_plan(cmd: JoinPlan, ctx: HandlerContext) -> Sequence[Event]:
    if await repo.member_id_taken(ctx.conn, cmd.member_id):
        raise Rejected("MEMBER_ID_TAKEN", f"member {cmd.member_id} already exists")
    person = rules.read_person(cmd.national_id, cmd.joined_on)
    hashed = id_hash(person.value, ctx.resources.settings.id_hash_key.get_secret_value().encode())
    payer = None if cmd.relation == "self" else await repo.get(ctx.conn, cmd.payer_id)
    joined = rules.join(cmd, rules=ctx.resources.rulebook.version_on(cmd.joined_on), person=person,
                        payer=payer,
                        person_has_active_membership=await repo.person_is_active(ctx.conn,
                                                                                 hashed))
    await repo.add(ctx.conn, member_id=joined.member_id, payer_id=joined.payer_id,
                   plan=joined.plan, relation=joined.relation, name=cmd.name,
                   masked_name=joined.masked_name, id_hash=hashed,
                   masked_id=joined.masked_national_id, birth_date=joined.birth_date,
                   joined_on=joined.joined_on,
                   waiting_period_ends_on=joined.waiting_period_ends_on,
                   rule_version=joined.rule_version)
    return [joined]


@router.command(LeavePlan)
async def leave_plan(cmd: LeavePlan, ctx: HandlerContext) -> Sequence[Event]:
    member = await repo.get(ctx.conn, cmd.member_id)
    family = [m for m in await repo.active_family(ctx.conn, cmd.member_id)
              if m.member_id != cmd.member_id]
    left = rules.leave(cmd, member, active_family=len(family))
    await repo.set_status(ctx.conn, [left.member_id], Status.LEFT, left.left_on)
    return [left]


@router.command(TransferPlan)
async def transfer_plan(cmd: TransferPlan, ctx: HandlerContext) -> Sequence[Event]:
    moved = rules.transfer(cmd, await repo.get(ctx.conn, cmd.member_id),
                           rules=ctx.resources.rulebook.version_on(cmd.transferred_on))
    await repo.set_plan(ctx.conn, moved.member_id, moved.to_plan)
    return [moved]


@router.event(PayerArrearsLimitReached)
async def on_arrears_limit(evt: PayerArrearsLimitReached, ctx: HandlerContext
                           ) -> Sequence[Event]:
    lapsed = rules.lapse(await repo.active_family(ctx.conn, evt.payer_id), evt.reached_on)
    await repo.set_status(ctx.conn, [e.member_id for e in lapsed], Status.LAPSED,
                          evt.reached_on)
    return lapsed


@router.event(CaseApproved)
async def on_case_approved(evt: CaseApproved, ctx: HandlerContext) -> Sequence[Event]:
    ended = rules.end_after_benefit(await repo.get(ctx.conn, evt.member_id), evt.approved_on)
    await repo.set_status(ctx.conn, [e.member_id for e in ended], Status.ENDED, evt.approved_on)
    return ended
