"""The life of a case (SPEC §4): filing checks, investigation, two reviews, public scrutiny,
the jury, appeals. Pure: each function takes state and returns the new state and events, or
raises ``Rejected`` with a reason code; an illegal step is ``ILLEGAL_TRANSITION``.

    filed -> under_investigation -> investigated -> reviewed -> final_reviewed -> published
    published -> approved (publicity passed) | disputed -> in_jury -> approved | rejected
    rejected at review or final review -> appealed -> in_jury -> final_reviewed | rejected
    any state before the jury -> withdrawn
"""

from __future__ import annotations

from datetime import date, timedelta

from mutualaid.contracts.base import Event
from mutualaid.contracts.claims import (
    AppealClaim, CaseApproved, CaseReadyForPublicity, CaseRejected, ClaimAppealed, ClaimFiled,
    ClaimInvestigated, ClaimReviewed, FileClaim, InvestigationStarted, RecordInvestigation,
    ReviewClaim, StartInvestigation)
from mutualaid.errors import Rejected
from mutualaid.identity import age_on
from mutualaid.rulebook import Rulebook

from .model import BEFORE_THE_JURY, Case, Coverage, State

Outcome = tuple[Case, list[Event]]


def age_band(age: int) -> str:
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def file(cmd: FileClaim, cover: Coverage | None, *, rulebook: Rulebook,
         member_has_open_or_paid_case: bool) -> Outcome:
    if cover is None:
        raise Rejected("NOT_A_MEMBER", f"no membership known for {cmd.member_id}")
    if cover.birth_date is None:
        raise Rejected("MEMBER_ERASED", "this member's personal data was erased at their request")
    if not cover.covers(cmd.diagnosed_on):
        raise Rejected("NOT_COVERED", "the member was not covered on the diagnosis date")
    if cmd.suspected_on is not None and cmd.suspected_on > cmd.diagnosed_on:
        raise Rejected("INVALID_DATE", "an illness is suspected before it is diagnosed")
    if cmd.diagnosed_on < cover.waiting_period_ends_on and not cmd.is_accident:
        raise Rejected("WAITING_PERIOD", f"diagnosed before the waiting period ended on "
                       f"{cover.waiting_period_ends_on}")
    version = rulebook.version_on(cmd.diagnosed_on)
    plan = version.plan(cover.plan)
    if not plan.covers(cmd.illness_code):
        raise Rejected("ILLNESS_NOT_COVERED", f"{cmd.illness_code} is not covered by {cover.plan}")
    lookback_ends = cover.waiting_period_ends_on + timedelta(days=plan.pre_existing_lookback_days)
    if (plan.is_malignant(cmd.illness_code) and not cmd.is_accident
            and cmd.suspected_on is not None and cmd.suspected_on < cover.waiting_period_ends_on
            and cmd.diagnosed_on <= lookback_ends):
        raise Rejected("PRE_EXISTING", "malignancy first suspected during the waiting period and "
                       f"diagnosed within the look-back (to {lookback_ends})")
    if member_has_open_or_paid_case:
        raise Rejected("ONE_BENEFIT_PER_MEMBER", "the member already has a case")
    age = age_on(cover.birth_date, cmd.diagnosed_on)
    benefit = plan.benefit_fen(age)
    if benefit is None:
        raise Rejected("AGE_NOT_COVERED", f"no benefit for age {age} in {cover.plan}")
    case = Case(cmd.case_id, cover.member_id, cover.payer_id, cover.plan, cmd.illness_code,
                cmd.diagnosed_on, cmd.hospital, age, benefit, version.version, State.FILED)
    return case, [ClaimFiled(
        case_id=case.case_id, member_id=case.member_id, payer_id=case.payer_id,
        plan=cover.plan,  # type: ignore[arg-type]
        illness_code=case.illness_code, diagnosed_on=case.diagnosed_on,
        is_accident=cmd.is_accident, hospital=case.hospital, age_at_diagnosis=age,
        benefit_fen=benefit, rule_version=version.version, documents=cmd.documents)]


def _require(case: Case | None, case_id: str, *allowed: State) -> Case:
    if case is None:
        raise Rejected("UNKNOWN_CASE", f"no case {case_id}")
    if case.state not in allowed:
        raise Rejected("ILLEGAL_TRANSITION",
                       f"case is {case.state.value}; needs {'/'.join(s.value for s in allowed)}")
    return case


def start_investigation(cmd: StartInvestigation, case: Case | None) -> Outcome:
    current = _require(case, cmd.case_id, State.FILED)
    return current.moved(State.UNDER_INVESTIGATION), [InvestigationStarted(
        case_id=cmd.case_id, investigator=cmd.investigator, started_on=cmd.started_on)]


def investigate(cmd: RecordInvestigation, case: Case | None) -> Outcome:
    current = _require(case, cmd.case_id, State.FILED, State.UNDER_INVESTIGATION)
    return current.moved(State.INVESTIGATED, investigation_summary=cmd.summary,
                         verified=cmd.verified), [
        ClaimInvestigated(case_id=cmd.case_id, investigator=cmd.investigator,
                          verified=cmd.verified, summary=cmd.summary, documents=cmd.documents,
                          investigated_on=cmd.investigated_on)]


def ready_for_publicity(case: Case, cover: Coverage, on: date) -> CaseReadyForPublicity:
    return CaseReadyForPublicity(
        case_id=case.case_id, member_id=case.member_id, payer_id=case.payer_id,
        plan=case.plan,  # type: ignore[arg-type]
        masked_name=cover.masked_name, masked_national_id=cover.masked_national_id,
        age_band=age_band(case.age_at_diagnosis), illness_code=case.illness_code,
        hospital=case.hospital, benefit_fen=case.benefit_fen,
        investigation_summary=case.investigation_summary, ready_on=on)


def review(cmd: ReviewClaim, case: Case | None, cover: Coverage) -> Outcome:
    before = State.INVESTIGATED if cmd.stage == "review" else State.REVIEWED
    current = _require(case, cmd.case_id, before)
    if not cmd.approved and not cmd.reason_code:
        raise Rejected("REASON_REQUIRED", "a refusal must carry a reason code")
    if cmd.approved and not current.verified:
        raise Rejected("INVESTIGATION_NOT_VERIFIED",
                       "a case whose records the investigator could not verify cannot pass")
    if cmd.stage == "final" and cmd.reviewer == current.first_reviewer:
        raise Rejected("SAME_REVIEWER", "the final review needs a second reviewer")
    reviewed = ClaimReviewed(case_id=cmd.case_id, stage=cmd.stage, reviewer=cmd.reviewer,
                             approved=cmd.approved, reason_code=cmd.reason_code, note=cmd.note,
                             reviewed_on=cmd.reviewed_on, rule_version=current.rule_version)
    if not cmd.approved:
        return current.moved(State.REJECTED, rejected_stage=cmd.stage), [
            reviewed, CaseRejected(case_id=current.case_id, member_id=current.member_id,
                                   reason_code=cmd.reason_code or "", message=cmd.note or "",
                                   rejected_on=cmd.reviewed_on)]
    if cmd.stage == "review":
        return current.moved(State.REVIEWED, first_reviewer=cmd.reviewer), [reviewed]
    return current.moved(State.FINAL_REVIEWED), [
        reviewed, ready_for_publicity(current, cover, cmd.reviewed_on)]


def withdraw(case_id: str, case: Case | None) -> Case:
    return _require(case, case_id, *BEFORE_THE_JURY).moved(State.WITHDRAWN)


def appeal(cmd: AppealClaim, case: Case | None) -> Outcome:
    current = _require(case, cmd.case_id, State.REJECTED)
    if current.rejected_stage not in ("review", "final"):
        raise Rejected("NOT_APPEALABLE", "only a rejection at review can be appealed")
    return current.moved(State.APPEALED, appealed=True), [ClaimAppealed(
        case_id=current.case_id, member_id=current.member_id, payer_id=current.payer_id,
        plan=current.plan,  # type: ignore[arg-type]
        reason=cmd.reason, appealed_on=cmd.appealed_on)]


def published(case: Case | None) -> Case | None:
    if case is None or case.state is not State.FINAL_REVIEWED:
        return None
    return case.moved(State.PUBLISHED)


# Publicity's and the jury's events reach claims on different topics, so their order is not
# guaranteed: the jury may open (or even decide) a disputed case before claims has read the
# dispute. A jury event implies the dispute; a late dispute is only recorded.

def disputed(case: Case | None) -> Case | None:
    """The new state, or the case unchanged when the jury got there first (to record)."""
    if case is None:
        return None
    if case.state is State.PUBLISHED:
        return case.moved(State.DISPUTED)
    if case.state in (State.IN_JURY, State.APPROVED, State.REJECTED) and not case.appealed:
        return case
    return None


def before_jury(case: Case | None) -> Case | None:
    if case is None or case.state not in (State.PUBLISHED, State.DISPUTED, State.APPEALED):
        return None
    return case.moved(State.IN_JURY)


def approve(case: Case | None, on: date) -> Outcome | None:
    """Publicity passed, or the jury approved a disputed case: the benefit is due."""
    if case is None or case.state not in (State.PUBLISHED, State.DISPUTED, State.IN_JURY):
        return None
    return case.moved(State.APPROVED), [CaseApproved(
        case_id=case.case_id, member_id=case.member_id, payer_id=case.payer_id,
        plan=case.plan,  # type: ignore[arg-type]
        benefit_fen=case.benefit_fen, rule_version=case.rule_version,
        diagnosed_on=case.diagnosed_on, approved_on=on)]


def jury_decided(case: Case | None, approved: bool, on: date, cover: Coverage | None
                 ) -> Outcome | None:
    """A verdict on a disputed case settles it; a verdict for an appeal sends the case on to
    public scrutiny, which every paid case passes through."""
    if case is None or case.state not in (State.PUBLISHED, State.DISPUTED, State.IN_JURY,
                                          State.APPEALED):
        return None
    if not approved:
        return refuse_after_jury(case, on)
    if case.appealed and cover is not None:
        return case.moved(State.FINAL_REVIEWED, rejected_stage=None), [
            ready_for_publicity(case, cover, on)]
    return approve(case, on)


def refuse_after_jury(case: Case | None, on: date) -> Outcome | None:
    if case is None or case.state not in (State.PUBLISHED, State.DISPUTED, State.IN_JURY,
                                          State.APPEALED):
        return None
    return case.moved(State.REJECTED, rejected_stage="jury"), [CaseRejected(
        case_id=case.case_id, member_id=case.member_id, reason_code="JURY_REJECTED",
        message="the member jury rejected the case", rejected_on=on)]
