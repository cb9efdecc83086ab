"""Publicity rules added to the round, objection and close rules (SPEC §5): publicity days,
the closing date, reasons, what a published case shows, and sharing notices. Pure."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.billing import SharingAnnounced
from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.publicity import (
    CaseDisputed, CasePublished, ClosePublicityRound, FileObjection, PublicityPassed,
    SharingNoticePublished)
from mutualaid.errors import Rejected
from mutualaid.identity import mask_id, synthetic_id
from mutualaid.rulebook import load_rulebook

from publicity.domain.calendar import terms_on
from publicity.domain.model import Objector, PublicityTerms, PublishedCase, Round
from publicity.domain.notices import public_notice
from publicity.domain.rules import close_round, closed, object_to, open_round

pytestmark = pytest.mark.domain

RULES = load_rulebook()
ROUND_DATE = date(2024, 5, 21)
TERMS = terms_on(RULES, ROUND_DATE)
DEADLINE = date(2024, 5, 24)
OPEN_ROUND = Round(ROUND_DATE, DEADLINE, closed=False)
CASE = PublishedCase("c-1", claimant_id="m-1", claimant_payer_id="p-1", round_date=ROUND_DATE)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


def ready(case_id: str = "c-1", member_id: str = "m-1", payer_id: str = "p-1",
          sequence: int = 1) -> CaseReadyForPublicity:
    return CaseReadyForPublicity(
        case_id=case_id, member_id=member_id, payer_id=payer_id, plan="critical_illness",
        masked_name="李*华", masked_national_id=mask_id(synthetic_id("110105", date(1990, 1, 2),
                                                                     sequence)),
        age_band="30-39", illness_code="leukaemia", hospital="Peking Union Medical College",
        benefit_fen=30_000_000, investigation_summary="records verified",
        ready_on=date(2024, 5, 10))


def objection(**changes: object) -> FileObjection:
    data: dict[str, object] = dict(objection_id="o-1", case_id="c-1", member_id="m-9",
                                   reason="the diagnosis predates joining",
                                   filed_on=ROUND_DATE + timedelta(days=1))
    data.update(changes)
    return FileObjection(**data)


# -- opening on publicity days only ---------------------------------------------------------

@pytest.mark.parametrize("day", [date(2024, 5, 7), date(2024, 5, 21), date(2019, 2, 7)])
def test_a_round_opens_on_a_publicity_day(day):
    rnd, events = open_round(day, None, [ready()], terms=terms_on(RULES, day))
    assert rnd == Round(day, day + timedelta(days=3), closed=False)
    assert len(events) == 2


@pytest.mark.parametrize("day", [date(2024, 5, 8), date(2024, 5, 14), date(2024, 5, 28),
                                 date(2024, 2, 29)])
def test_a_round_on_another_day_is_not_a_publicity_day(day):
    assert reason_of(open_round, day, None, [ready()], terms=terms_on(RULES, day)) == \
        "NOT_A_PUBLICITY_DAY"


def test_no_round_before_any_rulebook_is_in_force():
    day = date(2018, 10, 7)
    assert terms_on(RULES, day) is None
    assert reason_of(open_round, day, None, [], terms=None) == "NOT_A_PUBLICITY_DAY"


def test_a_round_follows_the_terms_given():
    terms = PublicityTerms(days=frozenset({5}), objection_window_days=6)
    rnd, _ = open_round(date(2024, 5, 5), None, [], terms=terms)
    assert rnd.objection_deadline == date(2024, 5, 11)


def test_an_existing_round_is_already_applied_before_anything_else():
    assert reason_of(open_round, ROUND_DATE, OPEN_ROUND, [], terms=TERMS) == "ALREADY_APPLIED"


# -- what a published case shows ------------------------------------------------------------

PUBLIC_FIELDS = {"case_id", "round_date", "plan", "masked_name", "masked_national_id",
                 "age_band", "illness_code", "hospital", "benefit_fen",
                 "investigation_summary", "objection_deadline"}


def test_case_published_has_only_the_public_fields():
    assert set(CasePublished.model_fields) == PUBLIC_FIELDS
    assert not {"member_id", "payer_id", "national_id", "name"} & set(CasePublished.model_fields)


IDS = st.text("ABCDEFGHJKMNPQRSTUVWXYZ", min_size=12, max_size=24)


@given(IDS, IDS, st.integers(min_value=1, max_value=999))
def test_no_member_or_payer_id_leaks_into_a_published_case(member_id, payer_id, sequence):
    _, events = open_round(ROUND_DATE, None, [ready("c-7", member_id, payer_id, sequence)],
                           terms=TERMS)
    published = events[1]
    assert isinstance(published, CasePublished)
    wire = orjson.dumps(published.model_dump(mode="json")).decode()
    assert member_id not in wire and payer_id not in wire
    assert published.masked_national_id.count("*") == 11


# -- objections -----------------------------------------------------------------------------

def do_object(cmd: FileObjection | None = None, *, who: Objector | None = None,
              rnd: Round = OPEN_ROUND, already: bool = False, taken: bool = False):
    return object_to(cmd or objection(), CASE, rnd, who or Objector("m-9", "p-9", True),
                     already_objected=already, objection_id_taken=taken)


@pytest.mark.parametrize("reason", ["", " ", "\n\t "])
def test_an_objection_without_a_reason_is_reason_required(reason):
    assert reason_of(do_object, objection(reason=reason)) == "REASON_REQUIRED"


def test_a_reused_objection_id_is_objection_id_taken():
    assert reason_of(do_object, taken=True) == "OBJECTION_ID_TAKEN"


def test_each_violation_has_its_own_reason_code():
    closed_round = Round(ROUND_DATE, DEADLINE, closed=True)
    cases = {
        "REASON_REQUIRED": lambda: do_object(objection(reason="  ")),
        "CASE_NOT_PUBLISHED": lambda: object_to(objection(), None, None, None,
                                                already_objected=False),
        "WINDOW_CLOSED": lambda: do_object(rnd=closed_round),
        "NOT_AN_ACTIVE_MEMBER": lambda: do_object(who=Objector("m-9", "p-9", False)),
        "CLAIMANT_CANNOT_OBJECT": lambda: do_object(objection(member_id="m-1"),
                                                    who=Objector("m-1", "p-1", True)),
        "SAME_PAYER": lambda: do_object(objection(member_id="m-2"),
                                        who=Objector("m-2", "p-1", True)),
        "ALREADY_OBJECTED": lambda: do_object(already=True),
        "OBJECTION_ID_TAKEN": lambda: do_object(taken=True),
    }
    assert {code: reason_of(call) for code, call in cases.items()} == {c: c for c in cases}


# -- closing --------------------------------------------------------------------------------

@pytest.mark.parametrize("closed_on", [ROUND_DATE, DEADLINE - timedelta(days=1)])
def test_closing_before_the_deadline_is_window_still_open(closed_on):
    assert reason_of(close_round, OPEN_ROUND, ROUND_DATE, {"c-1": 0},
                     closed_on=closed_on) == "WINDOW_STILL_OPEN"


def test_closing_on_the_deadline_by_default():
    cmd = ClosePublicityRound(round_date=ROUND_DATE)
    assert cmd.closed_on is None
    passed, _ = close_round(OPEN_ROUND, ROUND_DATE, {"c-1": 0}, closed_on=cmd.closed_on)
    assert isinstance(passed, PublicityPassed) and passed.passed_on == DEADLINE
    assert closed(OPEN_ROUND, None) == Round(ROUND_DATE, DEADLINE, True, DEADLINE)


def test_closing_later_dates_the_outcomes_on_that_day():
    later = DEADLINE + timedelta(days=2)
    disputed, passed, _ = close_round(OPEN_ROUND, ROUND_DATE, {"c-1": 2, "c-2": 0},
                                      closed_on=later)
    assert isinstance(disputed, CaseDisputed) and disputed.disputed_on == later
    assert isinstance(passed, PublicityPassed) and passed.passed_on == later
    assert closed(OPEN_ROUND, later).closed_on == later


def test_a_closed_round_is_already_applied_whatever_the_date():
    done = closed(OPEN_ROUND, None)
    for on in (None, ROUND_DATE, DEADLINE + timedelta(days=9)):
        assert reason_of(close_round, done, ROUND_DATE, {}, closed_on=on) == "ALREADY_APPLIED"


def test_closing_a_round_never_opened_is_unknown_round():
    assert reason_of(close_round, None, ROUND_DATE, {}, closed_on=DEADLINE) == "UNKNOWN_ROUND"


# -- sharing notices ------------------------------------------------------------------------

def announced(**changes: object) -> SharingAnnounced:
    data: dict[str, object] = dict(
        period_id="2024-05-28/critical_illness", plan="critical_illness",
        sharing_date=date(2024, 5, 28), roll_date=date(2024, 5, 21), rule_version="2020-01-01",
        cases=2, case_ids=("c-1", "c-2"), benefits_fen=40_000_000, fee_fen=3_200_000,
        total_fen=43_200_000, members_sharing=1_000_003, base_share_fen=43,
        members_paying_one_fen_more=199_871, member_debits_fen=43_200_000, subsidy_fen=0)
    data.update(changes)
    return SharingAnnounced(**data)


def test_a_sharing_notice_is_published_with_every_public_figure():
    notice = public_notice(announced())
    assert notice == SharingNoticePublished(
        period_id="2024-05-28/critical_illness", plan="critical_illness",
        sharing_date=date(2024, 5, 28), cases=2, case_ids=("c-1", "c-2"),
        benefits_fen=40_000_000, fee_fen=3_200_000, members_sharing=1_000_003,
        base_share_fen=43, members_paying_one_fen_more=199_871, subsidy_fen=0)


def test_a_dry_run_notice_is_not_published():
    assert public_notice(announced(dry_run=True)) is None
