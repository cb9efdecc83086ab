"""Public scrutiny (SPEC §5): a round publishes what passed final review, members object
within the window, and the close decides passed or disputed. Pure functions."""

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

from .model import Objector, PublishedCase, Round


def open_round(round_date: date, existing: Round | None, waiting: Sequence[CaseReadyForPublicity],
               *, objection_window_days: int) -> tuple[Round, list[Event]]:
    if existing is not None:
        raise Rejected(ReasonCode.ALREADY_APPLIED, f"the round of {round_date} is already open")
    deadline = round_date + timedelta(days=objection_window_days)
    published: list[Event] = [CasePublished(
        case_id=c.case_id, round_date=round_date, plan=c.plan, masked_name=c.masked_name,
        masked_national_id=c.masked_national_id, age_band=c.age_band,
        illness_code=c.illness_code, hospital=c.hospital, benefit_fen=c.benefit_fen,
        investigation_summary=c.investigation_summary, objection_deadline=deadline)
        for c in waiting]
    opened = PublicityRoundOpened(round_date=round_date, objection_deadline=deadline,
                                  cases=len(published))
    return Round(round_date, deadline, closed=False), [opened, *published]


def object_to(cmd: FileObjection, case: PublishedCase | None, rnd: Round | None,
              objector: Objector | None, *, already_objected: bool) -> ObjectionFiled:
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
    return ObjectionFiled(objection_id=cmd.objection_id, case_id=cmd.case_id,
                          member_id=cmd.member_id, reason=cmd.reason, filed_on=cmd.filed_on)


def close_round(rnd: Round | None, round_date: date, objections: Mapping[str, int]
                ) -> list[Event]:
    """``objections``: every case of the round with its count of objections."""
    if rnd is None:
        raise Rejected("UNKNOWN_ROUND", f"no round was opened on {round_date}")
    if rnd.closed:
        raise Rejected(ReasonCode.ALREADY_APPLIED, f"the round of {round_date} is closed")
    closed_on = rnd.objection_deadline
    outcomes: list[Event] = [
        CaseDisputed(case_id=case_id, round_date=round_date, objections=count,
                     disputed_on=closed_on) if count else
        PublicityPassed(case_id=case_id, round_date=round_date, passed_on=closed_on)
        for case_id, count in sorted(objections.items())]
    disputed = sum(1 for n in objections.values() if n)
    return [*outcomes, PublicityRoundClosed(round_date=round_date,
                                            passed=len(objections) - disputed,
                                            disputed=disputed)]
