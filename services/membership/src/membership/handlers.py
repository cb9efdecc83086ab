"""Thin translators: load state, ask the domain, persist, return events for the outbox.

Every state change also updates the plan counts in the same transaction; a plan falling
below its dissolution threshold adds the alert to the outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date

import structlog

from mutualaid.contracts import Event
from mutualaid.contracts.billing import PayerArrearsLimitReached
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.membership import (
    EndCoverageAtAgeLimit, EraseMember, ImportMembers, ImportRejection, JoinPlan, LeavePlan, MembersImported,
    NewMember, TransferPlan, AgeLimitApplied)
from mutualaid.errors import Rejected
from mutualaid.identity import IdHasher
from mutualaid.rulebook import RuleVersion
from mutualaid.runtime import BatchContext, BatchOutcome, HandlerContext, Router
from mutualaid.runtime.overlap import overlapped

from .adapters import repository as repo
from .domain import plan_size, rules
from .domain.model import Member, Status
from .domain.rules import Admission

router = Router("membership")
log = structlog.get_logger(__name__)


def _hasher(resources: object) -> Callable[[str], str]:
    """The keyed hash of an ID number, remembered for the batch (looked up, then stored)."""
    hasher = IdHasher(resources.settings.id_hash_key.get_secret_value().encode())  # type: ignore[attr-defined]
    seen: dict[str, str] = {}

    def hashed(national_id: str) -> str:
        if (value := seen.get(national_id)) is None:
            value = seen[national_id] = hasher(national_id)
        return value
    return hashed


async def _admit(ctx: HandlerContext | BatchContext, members: Sequence[NewMember]
                 ) -> tuple[list[Admission | Rejected], list[Event]]:
    """The one path for joins, whether one by one or imported: decide, store, count.

    The store is asked in one round trip while the joins are read, and the admitted rows are
    written while the dispatcher encodes their events: Postgres and Python work side by
    side, which is what lets one process import 20,000 members a second."""
    hasher = _hasher(ctx.resources)
    lookup = repo.known(ctx.conn, [m.member_id for m in members],
                        [hasher(m.national_id) for m in members],
                        [m.payer_id for m in members if m.relation != "self"])
    known, candidates = await overlapped(lookup, lambda: rules.read_joins(
        members, rulebook=ctx.resources.rulebook, hasher=hasher))
    outcomes = rules.decide_joins(candidates, known)
    admitted = [o for o in outcomes if isinstance(o, Admission)]
    deltas: plan_size.Deltas = Counter()
    for a in admitted:
        plan_size.moved(deltas, a.event.plan, None, Status.ACTIVE)
    on = max((a.event.joined_on for a in admitted), default=None)
    alerts = await _count(ctx.conn, deltas, on, ctx.resources) if on else []
    if admitted:
        await ctx.writes.start(repo.add_many(ctx.conn, admitted))
    return outcomes, alerts


@router.command_batch(JoinPlan)
async def join_plans(cmds: Sequence[JoinPlan], ctx: BatchContext) -> Sequence[BatchOutcome]:
    outcomes, alerts = await _admit(ctx, cmds)
    result: list[BatchOutcome] = [o if isinstance(o, Rejected) else [o.event] for o in outcomes]
    if alerts:
        last = max(i for i, o in enumerate(result) if not isinstance(o, Rejected))
        result[last] = [*result[last], *alerts]  # type: ignore[misc]
    return result


@router.command(ImportMembers)
async def import_members(cmd: ImportMembers, ctx: HandlerContext) -> Sequence[Event]:
    outcomes, alerts = await _admit(ctx, cmd.members)
    joined = [o.event for o in outcomes if isinstance(o, Admission)]
    refused = tuple(ImportRejection(member_id=m.member_id, reason_code=o.reason_code,
                                    message=o.message)
                    for m, o in zip(cmd.members, outcomes, strict=True)
                    if isinstance(o, Rejected))
    log.info("members imported", import_id=cmd.import_id, accepted=len(joined),
             rejected=len(refused))
    return [*joined, MembersImported(migration_id=cmd.migration_id, import_id=cmd.import_id,
                                     accepted=len(joined),
                                     rejected=refused), *alerts]


@router.command(LeavePlan)
async def leave_plan(cmd: LeavePlan, ctx: HandlerContext) -> Sequence[Event]:
    member = await repo.get(ctx.conn, cmd.member_id)
    family = [m for m in await repo.active_family(ctx.conn, cmd.member_id)
              if m.member_id != cmd.member_id]
    left = rules.leave(cmd, member, active_family=len(family),
                       rules=_rules_on(ctx, cmd.left_on))
    await repo.set_status(ctx.conn, [left.member_id], Status.LEFT, left.left_on)
    return [left, *await _moved(ctx, [member], Status.LEFT, left.left_on)]  # type: ignore[list-item]


@router.command(EraseMember)
async def erase_member(cmd: EraseMember, ctx: HandlerContext) -> Sequence[Event]:
    erased = rules.erase(cmd, await repo.get(ctx.conn, cmd.member_id))
    await repo.erase(ctx.conn, erased.member_id, erased.erased_on)
    log.info("member's personal data erased", member_id=erased.member_id)
    return [erased]


@router.command(TransferPlan)
async def transfer_plan(cmd: TransferPlan, ctx: HandlerContext) -> Sequence[Event]:
    member = await repo.get(ctx.conn, cmd.member_id)
    payer = (await repo.get(ctx.conn, member.payer_id)
             if member is not None and not member.is_payer else None)
    moved = rules.transfer(
        cmd, member, rules=_rules_on(ctx, cmd.transferred_on), payer=payer,
        person_active_elsewhere=member is not None and await repo.person_active_elsewhere(
            ctx.conn, member.member_id))
    assert member is not None
    await repo.move_to_plan(ctx.conn, moved.member_id, moved.to_plan, moved.transferred_on)
    deltas: plan_size.Deltas = Counter()
    plan_size.moved(deltas, member.plan, member.status, Status.ACTIVE, to_plan=moved.to_plan)
    return [moved, *await _count(ctx.conn, deltas, cmd.transferred_on, ctx.resources)]


@router.command(EndCoverageAtAgeLimit)
async def end_coverage_at_age_limit(cmd: EndCoverageAtAgeLimit, ctx: HandlerContext
                                    ) -> Sequence[Event]:
    limit = rules.CRITICAL_ILLNESS_AGE_LIMIT
    _rules_on(ctx, cmd.on)  # a date before the plan's rules (year 1) is refused, not crashed on
    born_by = _years_before(cmd.on, limit)
    candidates = await repo.age_limit_reached(ctx.conn, born_by)
    ended = rules.end_at_age_limit(candidates, cmd.on)
    await repo.set_status(ctx.conn, [e.member_id for e in ended], Status.ENDED, cmd.on,
                          "age_limit")
    by_id = {m.member_id: m for m in candidates}
    alerts = await _moved(ctx, [by_id[e.member_id] for e in ended], Status.ENDED, cmd.on)
    return [*ended, AgeLimitApplied(on=cmd.on, coverage_ended=len(ended)), *alerts]


@router.event(PayerArrearsLimitReached)
async def on_arrears_limit(evt: PayerArrearsLimitReached, ctx: HandlerContext
                           ) -> Sequence[Event]:
    family = await repo.active_family(ctx.conn, evt.payer_id)
    lapsed = rules.lapse(family, evt.reached_on)
    await repo.set_status(ctx.conn, [e.member_id for e in lapsed], Status.LAPSED,
                          evt.reached_on)
    return [*lapsed, *await _moved(ctx, family, Status.LAPSED, evt.reached_on)]


@router.event(CaseApproved)
async def on_case_approved(evt: CaseApproved, ctx: HandlerContext) -> Sequence[Event]:
    member = await repo.get(ctx.conn, evt.member_id)
    ended = rules.end_after_benefit(member, evt.approved_on)
    await repo.set_status(ctx.conn, [e.member_id for e in ended], Status.ENDED, evt.approved_on,
                          "benefit_paid")
    alerts = await _moved(ctx, [member] if ended else [], Status.ENDED, evt.approved_on)  # type: ignore[list-item]
    return [*ended, *alerts]


async def _moved(ctx: HandlerContext, members: Sequence[Member], to: Status, on: date
                 ) -> list[Event]:
    deltas: plan_size.Deltas = Counter()
    for m in members:
        if m.status is Status.ACTIVE:
            plan_size.moved(deltas, m.plan, Status.ACTIVE, to)
    return await _count(ctx.conn, deltas, on, ctx.resources)


async def _count(conn: object, deltas: plan_size.Deltas, on: date, resources: object
                 ) -> list[Event]:
    sizes = await repo.apply_counts(conn, deltas)
    if not sizes:
        return []
    version = resources.rulebook.version_on(on)  # type: ignore[attr-defined]
    events, reached = plan_size.alerts(
        sizes, {s.plan: version.plan(s.plan).dissolution_threshold_members for s in sizes}, on)
    if reached:
        await repo.set_reached(conn, reached)
    for e in events:
        log.warning("plan below its dissolution threshold: it carries on one more year",
                    plan=e.plan, active_members=e.active_members, threshold=e.threshold,
                    carries_on_until=e.carries_on_until.isoformat())
    return list(events)


def _rules_on(ctx: HandlerContext, day: date) -> RuleVersion:
    # A date before the first version (the fuzz sent year 1 and year 897) is the command's
    # fault: INVALID_DATE, not a handler failure.
    return rules.rules_on(ctx.resources.rulebook, day)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February: the birthday falls on 1 March in common years
        return day.replace(year=day.year - years, month=2, day=28)
