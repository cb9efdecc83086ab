"""Public scrutiny (SPEC §5): a round publishes what passed final review, members object
within the window, and the close decides passed or disputed. Pure functions.

Reason codes: NOT_A_PUBLICITY_DAY, ALREADY_APPLIED (round already opened or closed),
UNKNOWN_ROUND, WINDOW_STILL_OPEN; for objections REASON_REQUIRED, CASE_NOT_PUBLISHED,
WINDOW_CLOSED, NOT_AN_ACTIVE_MEMBER, CLAIMANT_CANNOT_OBJECT, SAME_PAYER, ALREADY_OBJECTED,
OBJECTION_ID_TAKEN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from mutualaid.contracts.base import Event
from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.publicity import (
    CaseDisputed, CasePublished, FileObjection, ObjectionFiled, PublicityPassed,
    PublicityRoundClosed, PublicityRoundOpened)
from mutualaid.contracts.rejection import ReasonCode
from mutualaid.errors import Rejected

from .model import Objector, PublicityTerms, PublishedCase, Round


def open_round(round_date: date, existing: Round | None, waiting: Sequence[CaseReadyForPublicity],
               *, terms: PublicityTerms | None) -> tuple[Round, list[Event]]:
    """``terms``: those of the rule version in force on ``round_date`` (None: none is)."""
    if existing is not None:
        raise Rejected(ReasonCode.ALREADY_APPLIED, f"the round of {round_date} is already open")
    if terms is None or not terms.is_publicity_day(round_date):
        days = sorted(terms.days) if terms else []
        raise Rejected("NOT_A_PUBLICITY_DAY", f"{round_date} is not a publicity day of the "
                       f"rulebook in force (days of the month: {days})")
    deadline = round_date + timedelta(days=terms.objection_window_days)
    published: list[Event] = [publish(c, round_date, deadline) for c in waiting]
    opened = PublicityRoundOpened(round_date=round_date, objection_deadline=deadline,
                                  cases=len(published))
    return Round(round_date, deadline, closed=False), [opened, *published]


def publish(c: CaseReadyForPublicity, round_date: date, deadline: date) -> CasePublished:
    """What the public sees of a case: masked name and ID, age band, illness, hospital,
    benefit and investigation summary. The claimant's and payer's member ids stay here: they
    would let anyone link the case to a member's other events."""
    return CasePublished(
        case_id=c.case_id, round_date=round_date, plan=c.plan, masked_name=c.masked_name,
        masked_national_id=c.masked_national_id, age_band=c.age_band,
        illness_code=c.illness_code, hospital=c.hospital, benefit_fen=c.benefit_fen,
        investigation_summary=c.investigation_summary, objection_deadline=deadline)


def object_to(cmd: FileObjection, case: PublishedCase | None, rnd: Round | None,
              objector: Objector | None, *, already_objected: bool,
              objection_id_taken: bool = False) -> ObjectionFiled:
    """``objection_id_taken``: another objection already has ``cmd.objection_id``."""
    if not cmd.reason.strip():
        raise Rejected("REASON_REQUIRED", "an objection must say why")
    if case is None or case.round_date is None or rnd is None:
        raise Rejected("CASE_NOT_PUBLISHED", f"case {cmd.case_id} is not in publicity")
    if rnd.closed or cmd.filed_on > rnd.objection_deadline or cmd.filed_on < rnd.round_date:
        raise Rejected("WINDOW_CLOSED", f"objections were open {rnd.round_date} to "
                       f"{rnd.objection_deadline}")
    if objector is None or not objector.active:
        raise Rejected("NOT_AN_ACTIVE_MEMBER", "only active members may object")
    if cmd.member_id == case.claimant_id:
        raise Rejected("CLAIMANT_CANNOT_OBJECT", "the claimant cannot object to their own case")
    if objector.payer_id == case.claimant_payer_id:
        raise Rejected("SAME_PAYER", "members of the claimant's payer cannot object")
    if already_objected:
        raise Rejected("ALREADY_OBJECTED", "one objection per member per case")
    if objection_id_taken:
        raise Rejected("OBJECTION_ID_TAKEN",
                       f"objection id {cmd.objection_id} belongs to another objection")
    return ObjectionFiled(objection_id=cmd.objection_id, case_id=cmd.case_id,
                          member_id=cmd.member_id, reason=cmd.reason, filed_on=cmd.filed_on)


def close_round(rnd: Round | None, round_date: date, objections: Mapping[str, int], *,
                closed_on: date | None = None) -> list[Event]:
    """``objections``: every case of the round with its count of objections. ``closed_on``
    (default: the deadline) dates the outcomes; closing before the deadline would cut the
    members' window short, so it is refused."""
    if rnd is None:
        raise Rejected("UNKNOWN_ROUND", f"no round was opened on {round_date}")
    if rnd.closed:
        raise Rejected(ReasonCode.ALREADY_APPLIED, f"the round of {round_date} is closed")
    on = closing_date(rnd, closed_on)
    if on < rnd.objection_deadline:
        raise Rejected("WINDOW_STILL_OPEN", f"objections to the round of {round_date} are "
                       f"open until {rnd.objection_deadline}; cannot close on {on}")
    outcomes: list[Event] = [
        CaseDisputed(case_id=case_id, round_date=round_date, objections=count,
                     disputed_on=on) if count else
        PublicityPassed(case_id=case_id, round_date=round_date, passed_on=on)
        for case_id, count in sorted(objections.items())]
    disputed = sum(1 for n in objections.values() if n)
    return [*outcomes, PublicityRoundClosed(round_date=round_date,
                                            passed=len(objections) - disputed,
                                            disputed=disputed)]


def closing_date(rnd: Round, closed_on: date | None) -> date:
    return closed_on or rnd.objection_deadline


def closed(rnd: Round, closed_on: date | None) -> Round:
    """The round as ``close_round`` leaves it."""
    return Round(rnd.round_date, rnd.objection_deadline, closed=True,
                 closed_on=closing_date(rnd, closed_on))
