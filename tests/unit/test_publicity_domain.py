"""Publicity domain rules (SPEC §5): open a round, object, close the round. Pure."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.claims import CaseReadyForPublicity
from mutualaid.contracts.publicity import (
    CaseDisputed, CasePublished, FileObjection, ObjectionFiled, PublicityPassed,
    PublicityRoundClosed, PublicityRoundOpened)
from mutualaid.contracts.rejection import ReasonCode
from mutualaid.errors import Rejected
from mutualaid.identity import mask_id, synthetic_id
from mutualaid.rulebook import load_rulebook

from publicity.domain.calendar import terms_on
from publicity.domain.model import Objector, PublishedCase, Round
from publicity.domain.rules import close_round, object_to, open_round

pytestmark = pytest.mark.domain

RULES = load_rulebook()
ROUND_DATE = date(2024, 5, 7)
WINDOW = RULES.version_on(ROUND_DATE).plan("critical_illness").objection_window_days
DEADLINE = ROUND_DATE + timedelta(days=WINDOW)
TERMS = terms_on(RULES, ROUND_DATE)
OPEN_ROUND = Round(ROUND_DATE, DEADLINE, closed=False)
CASE = PublishedCase("c-1", claimant_id="m-1", claimant_payer_id="p-1", round_date=ROUND_DATE)


def ready(case_id: str, sequence: int = 1) -> CaseReadyForPublicity:
    return CaseReadyForPublicity(
        case_id=case_id, member_id=f"m-{case_id}", payer_id=f"p-{case_id}",
        plan="critical_illness", masked_name="张*明",
        masked_national_id=mask_id(synthetic_id("310104", date(1988, 3, 4), sequence)),
        age_band="30-39", illness_code="leukaemia", hospital="Huashan Hospital",
        benefit_fen=30_000_000, investigation_summary="verified", ready_on=date(2024, 5, 2))


def objection(**changes: object) -> FileObjection:
    data: dict[str, object] = dict(objection_id="o-1", case_id="c-1", member_id="m-9",
                                   reason="saw the claimant running a marathon",
                                   filed_on=ROUND_DATE + timedelta(days=1))
    data.update(changes)
    return FileObjection(**data)


def objector(member_id: str = "m-9", payer_id: str = "p-9", active: bool = True) -> Objector:
    return Objector(member_id, payer_id, active)


def do_object(cmd: FileObjection | None = None, case: PublishedCase | None = CASE,
              rnd: Round | None = OPEN_ROUND, who: Objector | None = None, *,
              already: bool = False) -> ObjectionFiled:
    return object_to(cmd or objection(), case, rnd, who or objector(), already_objected=already)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


# -- open_round ----------------------------------------------------------------------------

def test_rulebook_objection_window_is_three_days():
    assert WINDOW == 3 and DEADLINE == date(2024, 5, 10)


def test_open_round_publishes_every_waiting_case_with_masked_data():
    waiting = [ready("c-1", 1), ready("c-2", 2)]
    rnd, events = open_round(ROUND_DATE, None, waiting, terms=TERMS)
    assert rnd == Round(ROUND_DATE, DEADLINE, closed=False)
    assert isinstance(events[0], PublicityRoundOpened)
    assert (events[0].round_date, events[0].objection_deadline, events[0].cases) == \
        (ROUND_DATE, DEADLINE, 2)
    published = events[1:]
    assert all(isinstance(e, CasePublished) for e in published)
    assert [e.case_id for e in published] == ["c-1", "c-2"]
    for event, source in zip(published, waiting, strict=False):
        assert event.round_date == ROUND_DATE and event.objection_deadline == DEADLINE
        assert (event.plan, event.masked_name, event.masked_national_id, event.age_band,
                event.illness_code, event.hospital, event.benefit_fen,
                event.investigation_summary) == (
            source.plan, source.masked_name, source.masked_national_id, source.age_band,
            source.illness_code, source.hospital, source.benefit_fen,
            source.investigation_summary)
        assert "*" * 11 in event.masked_national_id


def test_open_round_with_no_waiting_case_still_opens():
    rnd, events = open_round(ROUND_DATE, None, [], terms=TERMS)
    assert rnd.closed is False
    assert len(events) == 1 and events[0].cases == 0


def test_open_round_twice_is_already_applied():
    assert reason_of(open_round, ROUND_DATE, OPEN_ROUND, [ready("c-1")],
                     terms=TERMS) == ReasonCode.ALREADY_APPLIED == \
        "ALREADY_APPLIED"


# -- object_to -----------------------------------------------------------------------------

def test_objection_emits_objection_filed():
    event = do_object()
    assert isinstance(event, ObjectionFiled)
    assert (event.objection_id, event.case_id, event.member_id, event.reason, event.filed_on) \
        == ("o-1", "c-1", "m-9", "saw the claimant running a marathon",
            ROUND_DATE + timedelta(days=1))


@pytest.mark.parametrize("filed_on", [ROUND_DATE, DEADLINE])
def test_objection_on_first_and_last_day_of_window_is_accepted(filed_on):
    assert do_object(objection(filed_on=filed_on)).filed_on == filed_on


@pytest.mark.parametrize("case, rnd", [
    (None, OPEN_ROUND),
    (PublishedCase("c-1", "m-1", "p-1", round_date=None), OPEN_ROUND),
    (CASE, None),
], ids=["unknown-case", "not-yet-published", "no-round"])
def test_objection_to_unpublished_case_is_case_not_published(case, rnd):
    assert reason_of(do_object, objection(), case, rnd) == "CASE_NOT_PUBLISHED"


@pytest.mark.parametrize("rnd, filed_on", [
    (Round(ROUND_DATE, DEADLINE, closed=True), ROUND_DATE + timedelta(days=1)),
    (OPEN_ROUND, DEADLINE + timedelta(days=1)),
    (OPEN_ROUND, ROUND_DATE - timedelta(days=1)),
], ids=["closed", "after-deadline", "before-round"])
def test_objection_outside_the_window_is_window_closed(rnd, filed_on):
    assert reason_of(do_object, objection(filed_on=filed_on), CASE, rnd) == "WINDOW_CLOSED"


def test_objection_by_non_member_is_not_an_active_member():
    assert reason_of(object_to, objection(), CASE, OPEN_ROUND, None,
                     already_objected=False) == "NOT_AN_ACTIVE_MEMBER"


def test_objection_by_inactive_member_is_not_an_active_member():
    assert reason_of(do_object, who=objector(active=False)) == "NOT_AN_ACTIVE_MEMBER"


def test_objection_by_the_claimant_is_claimant_cannot_object():
    cmd = objection(member_id="m-1")
    assert reason_of(do_object, cmd, who=objector("m-1", "p-1")) == "CLAIMANT_CANNOT_OBJECT"


@pytest.mark.parametrize("member_id", ["p-1", "m-2"], ids=["the-payer", "a-family-member"])
def test_objection_by_the_claimants_payer_or_family_is_same_payer(member_id):
    cmd = objection(member_id=member_id)
    assert reason_of(do_object, cmd, who=objector(member_id, "p-1")) == "SAME_PAYER"


def test_second_objection_by_the_same_member_is_already_objected():
    assert reason_of(do_object, already=True) == "ALREADY_OBJECTED"


# -- close_round ---------------------------------------------------------------------------

def test_close_round_passes_unobjected_and_disputes_objected_cases():
    events = close_round(OPEN_ROUND, ROUND_DATE, {"c-2": 0, "c-1": 3, "c-3": 0})
    assert [type(e) for e in events] == [CaseDisputed, PublicityPassed, PublicityPassed,
                                         PublicityRoundClosed]
    disputed = events[0]
    assert (disputed.case_id, disputed.round_date, disputed.objections, disputed.disputed_on) \
        == ("c-1", ROUND_DATE, 3, DEADLINE)
    assert [(e.case_id, e.round_date, e.passed_on) for e in events[1:3]] == [
        ("c-2", ROUND_DATE, DEADLINE), ("c-3", ROUND_DATE, DEADLINE)]
    closed = events[-1]
    assert (closed.round_date, closed.passed, closed.disputed) == (ROUND_DATE, 2, 1)


def test_close_empty_round_reports_zero_counts():
    events = close_round(OPEN_ROUND, ROUND_DATE, {})
    assert len(events) == 1 and isinstance(events[0], PublicityRoundClosed)
    assert (events[0].passed, events[0].disputed) == (0, 0)


def test_close_unknown_round_is_unknown_round():
    assert reason_of(close_round, None, ROUND_DATE, {"c-1": 0}) == "UNKNOWN_ROUND"


def test_close_closed_round_is_already_applied():
    closed = Round(ROUND_DATE, DEADLINE, closed=True)
    assert reason_of(close_round, closed, ROUND_DATE, {"c-1": 0}) == "ALREADY_APPLIED"


@given(st.dictionaries(st.text("abcdef0123456789-", min_size=1, max_size=12),
                       st.integers(min_value=0, max_value=50), max_size=40))
def test_close_round_gives_each_case_exactly_one_outcome(objections):
    events = close_round(OPEN_ROUND, ROUND_DATE, objections)
    *outcomes, closed = events
    assert isinstance(closed, PublicityRoundClosed)
    assert all(isinstance(e, (PublicityPassed, CaseDisputed)) for e in outcomes)
    per_case = Counter(e.case_id for e in outcomes)
    assert set(per_case) == set(objections) and set(per_case.values()) <= {1}
    for e in outcomes:
        assert isinstance(e, CaseDisputed) == (objections[e.case_id] > 0)
        if isinstance(e, CaseDisputed):
            assert e.objections == objections[e.case_id]
    assert closed.passed + closed.disputed == len(objections)
    assert closed.disputed == sum(isinstance(e, CaseDisputed) for e in outcomes)
    assert closed.passed == sum(isinstance(e, PublicityPassed) for e in outcomes)
