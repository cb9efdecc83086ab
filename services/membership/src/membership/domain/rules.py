"""Membership rules of SPEC §2-3: pure functions from state and command to events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from mutualaid.contracts.membership import (
    EraseMember, LeavePlan, MemberCoverageEnded, MemberErased, MemberJoined, MemberLapsed,
    MemberLeft, MemberTransferred, NewMember, TransferPlan)
from mutualaid.errors import Rejected
from mutualaid.identity import InvalidResidentId, ResidentId, age_in_days, age_on, mask_id, \
    mask_name, parse_resident_id
from mutualaid.rulebook import PlanRules, RuleLookupError, Rulebook, RuleVersion

from .model import Known, Member, Status
from .roll import last_sharing_date

MIN_PAYER_CREDIT_SCORE = 650
#: Critical-illness coverage ends at this age (SPEC §3).
CRITICAL_ILLNESS_AGE_LIMIT = 60


def read_person(national_id: str, on: date) -> ResidentId:
    try:
        return parse_resident_id(national_id, today=on)
    except InvalidResidentId as exc:
        raise Rejected(exc.reason_code, exc.message) from None


def join(cmd: NewMember, *, rules: RuleVersion, person: ResidentId, payer: Member | None,
         person_has_active_membership: bool) -> MemberJoined:
    """One join decided on its own; ``admit`` decides the same rules for a batch."""
    plan = rules.plan(cmd.plan)
    refused = (_refused_before_store(cmd)
               or _refused_by_store(cmd, payer, person_has_active_membership)
               or _refused_after_store(cmd, plan, person))
    if refused is not None:
        raise refused
    return _joined(cmd, rules, plan, person)


# The checks of a join, in the order their reason codes take precedence. The store's two
# checks (an active payer, no other active membership) sit between two groups that need
# only the command, so a batch can run both groups while the store is being asked.

def _refused_before_store(cmd: NewMember) -> Rejected | None:
    if cmd.relation == "self":
        if cmd.payer_id != cmd.member_id:
            return Rejected("PAYER_MISMATCH", "a member joining for themself is their own payer")
        if (cmd.payer_credit_score or 0) < MIN_PAYER_CREDIT_SCORE:
            return Rejected("CREDIT_SCORE_TOO_LOW",
                            f"a payer needs a credit score of at least {MIN_PAYER_CREDIT_SCORE}")
    return None


def _refused_by_store(cmd: NewMember, payer: Member | None,
                      person_has_active_membership: bool) -> Rejected | None:
    if cmd.relation != "self" and (payer is None or payer.status is not Status.ACTIVE
                                   or not payer.is_payer):
        return Rejected("PAYER_NOT_ACTIVE", "family members are added by an active payer")
    if person_has_active_membership:
        return Rejected("ALREADY_A_MEMBER", "this person already has an active membership")
    return None


def _refused_after_store(cmd: NewMember, plan: PlanRules, person: ResidentId
                         ) -> Rejected | None:
    band = plan.join_age
    years, days = age_on(person.birth_date, cmd.joined_on), age_in_days(person.birth_date,
                                                                        cmd.joined_on)
    too_young = years < band.min_years or (band.min_years == 0 and days < band.min_days)
    if too_young or years > band.max_years:
        return Rejected("AGE_OUT_OF_BAND", f"{cmd.plan} accepts ages {band.min_years} years "
                        f"{band.min_days} days to {band.max_years} years; this person is {years}")
    if plan.health_declaration_required and not cmd.health_declaration:
        return Rejected("HEALTH_DECLARATION_MISSING", "the health declaration must be affirmed")
    if plan.chronic_condition_required:
        declared = set(cmd.chronic_conditions)
        if not declared or not declared <= set(plan.chronic_condition_groups):
            return Rejected("CHRONIC_CONDITION_INVALID",
                            f"{cmd.plan} needs one of {', '.join(plan.chronic_condition_groups)}")
    return None


def _joined(cmd: NewMember, rules: RuleVersion, plan: PlanRules, person: ResidentId
            ) -> MemberJoined:
    return MemberJoined(
        member_id=cmd.member_id, payer_id=cmd.payer_id, plan=cmd.plan, relation=cmd.relation,
        masked_name=mask_name(cmd.name), masked_national_id=mask_id(person.value),
        birth_date=person.birth_date, joined_on=cmd.joined_on,
        waiting_period_ends_on=cmd.joined_on + timedelta(days=plan.waiting_period_days),
        rule_version=rules.version,
    )


@dataclass(frozen=True, slots=True)
class Admission:
    event: MemberJoined
    id_hash: str
    name: str


class Candidate(NamedTuple):
    """A join read without the store: what it was refused for before or after the store's
    checks, or the event it makes if the store has no objection. (A tuple: made for every
    imported member, where a frozen dataclass cost three times as much.)"""

    cmd: NewMember
    id_hash: str | None = None
    refused_before: Rejected | None = None
    refused_after: Rejected | None = None
    event: MemberJoined | None = None


def read_joins(cmds: Sequence[NewMember], *, rulebook: Rulebook, hasher: Callable[[str], str]
               ) -> list[Candidate]:
    """Everything about a batch of joins that does not depend on the store."""
    candidates: list[Candidate] = []
    for cmd in cmds:
        try:
            person = read_person(cmd.national_id, cmd.joined_on)
            rules = rules_on(rulebook, cmd.joined_on)
        except Rejected as refused:
            candidates.append(Candidate(cmd, refused_before=refused))
            continue
        if (refused := _refused_before_store(cmd)) is not None:
            candidates.append(Candidate(cmd, refused_before=refused))
            continue
        plan = rules.plan(cmd.plan)
        refused = _refused_after_store(cmd, plan, person)
        candidates.append(Candidate(
            cmd, hasher(person.value), refused_after=refused,
            event=None if refused is not None else _joined(cmd, rules, plan, person)))
    return candidates


def decide_joins(candidates: Sequence[Candidate], known: Known) -> list[Admission | Rejected]:
    """Decide a batch of read joins in order, one outcome each. ``known`` holds what the store
    knew before the batch and is updated as members are admitted, so later joins in the
    batch see earlier ones."""
    outcomes: list[Admission | Rejected] = []
    for c in candidates:
        cmd = c.cmd
        if cmd.member_id in known.taken_member_ids:
            outcomes.append(Rejected("MEMBER_ID_TAKEN", f"member {cmd.member_id} already exists"))
            continue
        refused = c.refused_before or _refused_by_store(
            cmd, known.payers.get(cmd.payer_id), c.id_hash in known.active_id_hashes)
        if refused is not None or c.refused_after is not None:
            outcomes.append(refused or c.refused_after)  # type: ignore[arg-type]
            continue
        event, hashed = c.event, c.id_hash
        assert event is not None and hashed is not None
        known.taken_member_ids.add(cmd.member_id)
        known.active_id_hashes.add(hashed)
        if cmd.relation == "self":
            known.payers[cmd.member_id] = Member(
                cmd.member_id, cmd.payer_id, cmd.plan, cmd.relation, event.birth_date,
                cmd.joined_on, event.waiting_period_ends_on, Status.ACTIVE)
        outcomes.append(Admission(event, hashed, cmd.name))
    return outcomes


def admit(cmds: Sequence[NewMember], *, rulebook: Rulebook, hasher: Callable[[str], str],
          known: Known) -> list[Admission | Rejected]:
    """Decide a batch of joins in order, one outcome each (``read_joins`` then
    ``decide_joins``)."""
    return decide_joins(read_joins(cmds, rulebook=rulebook, hasher=hasher), known)


def rules_on(rulebook: Rulebook, day: date) -> RuleVersion:
    """The rules in force on a command's date; a date before the first version is the
    command's fault (``INVALID_DATE``), not a failure of the service."""
    try:
        return rulebook.version_on(day)
    except RuleLookupError as exc:
        raise Rejected("INVALID_DATE", str(exc)) from None


def leave(cmd: LeavePlan, member: Member | None, *, active_family: int,
          rules: RuleVersion) -> MemberLeft:
    if member is None:
        raise Rejected("UNKNOWN_MEMBER", f"no member {cmd.member_id}")
    if member.status is not Status.ACTIVE:
        raise Rejected("NOT_ACTIVE", f"member is {member.status.value}")
    if member.is_payer and active_family:
        raise Rejected("FAMILY_STILL_ACTIVE",
                       f"{active_family} family member(s) paid for by this payer must leave first")
    if cmd.left_on < member.joined_on:
        raise Rejected("INVALID_DATE", "cannot leave before joining")
    last = last_sharing_date(member.joined_on, cmd.left_on, rules.plan(member.plan))
    return MemberLeft(member_id=member.member_id, payer_id=member.payer_id, plan=member.plan,
                      left_on=cmd.left_on, last_sharing_date=last)


#: The only transfer the plans allow: a critical-illness member reaching 60 moves to the
#: elderly cancer plan without serving a new waiting period (SPEC §3).
ALLOWED_TRANSFERS = frozenset({("critical_illness", "elderly_cancer")})


def transfer(cmd: TransferPlan, member: Member | None, *, rules: RuleVersion,
             person_active_elsewhere: bool, payer: Member | None) -> MemberTransferred:
    """``payer``: the member's payer when they are a family member (None for a payer)."""
    if member is None:
        raise Rejected("UNKNOWN_MEMBER", f"no member {cmd.member_id}")
    if member.erased or member.birth_date is None:
        raise Rejected("MEMBER_ERASED", "this member's personal data was erased")
    # A member whose critical-illness coverage ended at 60 may still transfer.
    ended_at_limit = member.status is Status.ENDED and member.end_reason == "age_limit"
    if member.status is not Status.ACTIVE and not ended_at_limit:
        raise Rejected("NOT_ACTIVE", f"member is {member.status.value}")
    if person_active_elsewhere:
        raise Rejected("ALREADY_A_MEMBER", "this person has another active membership")
    if not member.is_payer and (payer is None or payer.status is not Status.ACTIVE):
        raise Rejected("PAYER_NOT_ACTIVE", "a family member is covered only while their payer "
                       "is an active member")
    if (member.plan, cmd.to_plan) not in ALLOWED_TRANSFERS:
        raise Rejected("TRANSFER_NOT_ALLOWED", f"{member.plan} members cannot move to "
                       f"{cmd.to_plan}")
    band = rules.plan(cmd.to_plan).join_age
    age = age_on(member.birth_date, cmd.transferred_on)
    if not band.min_years <= age <= band.max_years:
        raise Rejected("AGE_OUT_OF_BAND", f"{cmd.to_plan} accepts ages {band.min_years} to "
                       f"{band.max_years}; this member is {age}")
    return MemberTransferred(member_id=member.member_id, payer_id=member.payer_id,
                             from_plan=member.plan, to_plan=cmd.to_plan,  # type: ignore[arg-type]
                             transferred_on=cmd.transferred_on,
                             waiting_period_ends_on=member.waiting_period_ends_on)


def erase(cmd: EraseMember, member: Member | None) -> MemberErased:
    """Right to erasure, for a member who is no longer covered: their personal data goes,
    their ids and dates stay (billing's charges and claims' cases refer to the ids)."""
    if member is None:
        raise Rejected("UNKNOWN_MEMBER", f"no member {cmd.member_id}")
    if member.status is Status.ACTIVE:
        raise Rejected("STILL_ACTIVE", "a member's data is erased after they leave the plan")
    if member.erased:
        raise Rejected("ALREADY_ERASED", "this member's personal data is already erased")
    return MemberErased(member_id=member.member_id, erased_on=cmd.requested_on)


def lapse(members: list[Member], on: date) -> list[MemberLapsed]:
    return [MemberLapsed(member_id=m.member_id, payer_id=m.payer_id, plan=m.plan, lapsed_on=on)
            for m in members if m.status is Status.ACTIVE]


def end_after_benefit(member: Member | None, on: date) -> list[MemberCoverageEnded]:
    if member is None or member.status is not Status.ACTIVE:
        return []
    return [MemberCoverageEnded(member_id=member.member_id, payer_id=member.payer_id,
                                plan=member.plan, ended_on=on, reason="benefit_paid")]


def end_at_age_limit(members: Sequence[Member], on: date) -> list[MemberCoverageEnded]:
    """Critical-illness members aged 60 or more on ``on`` lose that coverage."""
    return [MemberCoverageEnded(member_id=m.member_id, payer_id=m.payer_id,
                                plan=m.plan,  # type: ignore[arg-type]
                                ended_on=on, reason="age_limit")
            for m in members
            if m.status is Status.ACTIVE and m.plan == "critical_illness"
            and m.birth_date is not None
            and age_on(m.birth_date, on) >= CRITICAL_ILLNESS_AGE_LIMIT]
