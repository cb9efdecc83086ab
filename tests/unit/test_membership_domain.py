"""Membership domain rules (SPEC §2-§3): join, leave, lapse, end of coverage. Pure, no I/O."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.membership import (
    EraseMember, JoinPlan, LeavePlan, MemberCoverageEnded, MemberErased, MemberJoined,
    MemberLapsed, MemberLeft)
from mutualaid.errors import Rejected
from mutualaid.identity import check_digit, synthetic_id
from mutualaid.rulebook import load_rulebook

from membership.domain.model import Member, Status
from membership.domain.rules import MIN_PAYER_CREDIT_SCORE, end_after_benefit, erase, join, \
    lapse, leave, read_person

pytestmark = pytest.mark.domain

RULES = load_rulebook()
JOINED_ON = date(2024, 3, 15)
VERSION = RULES.version_on(JOINED_ON)
REGION = "310104"
NAME = "张三明"
BIRTH = date(1990, 5, 17)
NATIONAL_ID = synthetic_id(REGION, BIRTH, 123)


# -- helpers -------------------------------------------------------------------------------

def add_years(day: date, years: int) -> date:
    """The date ``years`` later; Feb 29 becomes Mar 1 in a non-leap year (the day the person
    is a year older, SPEC §3 convention of ``age_on``)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def join_cmd(**changes: object) -> JoinPlan:
    data: dict[str, object] = dict(
        member_id="m-1", payer_id="m-1", plan="critical_illness", national_id=NATIONAL_ID,
        name=NAME, relation="self", payer_credit_score=700, health_declaration=True,
        chronic_conditions=(), joined_on=JOINED_ON)
    data.update(changes)
    return JoinPlan(**data)


def member(member_id: str = "m-1", payer_id: str | None = None, relation: str = "self",
           status: Status = Status.ACTIVE, joined_on: date = JOINED_ON,
           plan: str = "critical_illness") -> Member:
    return Member(member_id=member_id, payer_id=payer_id or member_id, plan=plan,
                  relation=relation, birth_date=BIRTH, joined_on=joined_on,
                  waiting_period_ends_on=joined_on + timedelta(days=90), status=status)


def do_join(cmd: JoinPlan | None = None, *, person=None, payer: Member | None = None,
            active: bool = False, rules=VERSION) -> MemberJoined:
    cmd = cmd or join_cmd()
    return join(cmd, rules=rules, person=person or read_person(cmd.national_id, cmd.joined_on),
                payer=payer, person_has_active_membership=active)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


# -- read_person ---------------------------------------------------------------------------

def test_read_person_returns_birth_date_of_a_valid_id():
    person = read_person(NATIONAL_ID, JOINED_ON)
    assert person.birth_date == BIRTH
    assert person.value == NATIONAL_ID


def test_read_person_accepts_lower_case_x_check_character():
    # find a sequence whose check character is X
    value = next(v for v in (synthetic_id(REGION, BIRTH, s) for s in range(1000))
                 if v.endswith("X"))
    assert read_person(value[:17] + "x", JOINED_ON).value == value


@pytest.mark.parametrize("national_id, code", [
    ("31010419900517", "ID_FORMAT"),                       # too short
    ("31010419900517123A", "ID_FORMAT"),                   # letter other than X
    (NATIONAL_ID[:17] + ("0" if NATIONAL_ID[17] != "0" else "1"), "ID_CHECKSUM"),
])
def test_read_person_rejects_malformed_ids(national_id, code):
    assert reason_of(read_person, national_id, JOINED_ON) == code


def _with_check(first17: str) -> str:
    return first17 + check_digit(first17)


def test_read_person_rejects_unknown_region_with_id_region():
    assert reason_of(read_person, _with_check("99010419900517123"), JOINED_ON) == "ID_REGION"


def test_read_person_rejects_impossible_birth_date_with_id_birth_date():
    assert reason_of(read_person, _with_check("31010419900230123"), JOINED_ON) == "ID_BIRTH_DATE"


def test_read_person_rejects_birth_after_the_join_date_with_id_birth_date():
    future = synthetic_id(REGION, JOINED_ON + timedelta(days=1), 1)
    assert reason_of(read_person, future, JOINED_ON) == "ID_BIRTH_DATE"


def test_read_person_message_does_not_repeat_the_number():
    bad = NATIONAL_ID[:17] + ("0" if NATIONAL_ID[17] != "0" else "1")
    with pytest.raises(Rejected) as info:
        read_person(bad, JOINED_ON)
    assert info.value.reason_code == "ID_CHECKSUM"
    assert bad not in str(info.value) and bad[:14] not in info.value.message


# -- join: success -------------------------------------------------------------------------

def test_join_self_emits_member_joined_with_masked_data_and_waiting_period():
    event = do_join()
    assert isinstance(event, MemberJoined)
    assert event.member_id == "m-1" and event.payer_id == "m-1"
    assert event.plan == "critical_illness" and event.relation == "self"
    assert event.masked_name == "张*明"
    assert event.masked_national_id == NATIONAL_ID[:3] + "*" * 11 + NATIONAL_ID[-4:]
    assert event.birth_date == BIRTH
    assert event.joined_on == JOINED_ON
    assert event.waiting_period_ends_on == JOINED_ON + timedelta(days=90)
    assert event.rule_version == VERSION.version == "2020-01-01"


@pytest.mark.parametrize("name, masked", [("张", "*"), ("张三", "张*"), ("欧阳春华", "欧**华")])
def test_join_masks_names_of_every_length(name, masked):
    assert do_join(join_cmd(name=name)).masked_name == masked


def test_join_uses_the_waiting_period_of_the_given_rule_version():
    joined_on = date(2018, 11, 1)
    version = RULES.version_on(joined_on)
    event = do_join(join_cmd(joined_on=joined_on), rules=version)
    assert event.rule_version == "2018-10-16"
    assert event.waiting_period_ends_on == date(2019, 1, 30)


def test_join_credit_score_exactly_at_the_minimum_is_accepted():
    event = do_join(join_cmd(payer_credit_score=MIN_PAYER_CREDIT_SCORE))
    assert MIN_PAYER_CREDIT_SCORE == 650
    assert event.member_id == "m-1"


def test_join_family_member_of_an_active_payer_needs_no_credit_score():
    child_birth = date(2015, 1, 2)
    cmd = join_cmd(member_id="m-2", payer_id="m-1", relation="child", payer_credit_score=None,
                   national_id=synthetic_id(REGION, child_birth, 7), name="张小明")
    event = do_join(cmd, payer=member("m-1"))
    assert (event.member_id, event.payer_id, event.relation) == ("m-2", "m-1", "child")
    assert event.birth_date == child_birth


def test_join_elderly_cancer_accepts_a_65_year_old():
    birth = date(1959, 1, 1)
    cmd = join_cmd(plan="elderly_cancer", national_id=synthetic_id(REGION, birth, 1))
    assert do_join(cmd).plan == "elderly_cancer"


def test_join_chronic_cancer_accepts_a_declared_condition_group():
    cmd = join_cmd(plan="chronic_cancer", chronic_conditions=("hypertension", "diabetes"))
    assert do_join(cmd).plan == "chronic_cancer"


# -- join: one test per reason code --------------------------------------------------------

def test_join_self_with_other_payer_is_payer_mismatch():
    assert reason_of(do_join, join_cmd(payer_id="someone-else")) == "PAYER_MISMATCH"


@pytest.mark.parametrize("score", [None, 0, MIN_PAYER_CREDIT_SCORE - 1])
def test_join_self_with_low_or_missing_score_is_credit_score_too_low(score):
    assert reason_of(do_join, join_cmd(payer_credit_score=score)) == "CREDIT_SCORE_TOO_LOW"


@pytest.mark.parametrize("payer", [
    None,
    member("m-1", status=Status.LEFT),
    member("m-1", status=Status.LAPSED),
    member("m-1", status=Status.ENDED),
    member("m-1", payer_id="m-0", relation="spouse"),  # active, but not a payer
], ids=["none", "left", "lapsed", "ended", "not-a-payer"])
def test_join_family_member_without_active_payer_is_payer_not_active(payer):
    cmd = join_cmd(member_id="m-2", payer_id="m-1", relation="spouse", payer_credit_score=None)
    assert reason_of(do_join, cmd, payer=payer) == "PAYER_NOT_ACTIVE"


def test_join_person_with_active_membership_is_already_a_member():
    assert reason_of(do_join, join_cmd(), active=True) == "ALREADY_A_MEMBER"


def test_join_without_health_declaration_is_health_declaration_missing():
    assert reason_of(do_join, join_cmd(health_declaration=False)) == \
        "HEALTH_DECLARATION_MISSING"


@pytest.mark.parametrize("conditions", [(), ("asthma",), ("hypertension", "asthma")])
def test_join_chronic_cancer_without_a_listed_group_is_chronic_condition_invalid(conditions):
    cmd = join_cmd(plan="chronic_cancer", chronic_conditions=conditions)
    assert reason_of(do_join, cmd) == "CHRONIC_CONDITION_INVALID"


# -- join: age band ------------------------------------------------------------------------

@pytest.mark.parametrize("birth, accepted", [
    (JOINED_ON - timedelta(days=29), False),            # 29 days old
    (JOINED_ON - timedelta(days=30), True),             # 30 days old
    (add_years(JOINED_ON, -60) + timedelta(days=1), True),  # last day of 59
    (add_years(JOINED_ON, -60), False),                 # 60th birthday
])
def test_join_critical_illness_age_band_edges(birth, accepted):
    cmd = join_cmd(national_id=synthetic_id(REGION, birth, 5))
    if accepted:
        assert do_join(cmd).birth_date == birth
    else:
        assert reason_of(do_join, cmd) == "AGE_OUT_OF_BAND"


@pytest.mark.parametrize("birth, accepted", [
    (add_years(JOINED_ON, -60) + timedelta(days=1), False),  # 59
    (add_years(JOINED_ON, -60), True),                       # 60th birthday
    (add_years(JOINED_ON, -71) + timedelta(days=1), True),   # last day of 70
    (add_years(JOINED_ON, -71), False),                      # 71st birthday
])
def test_join_elderly_cancer_age_band_edges(birth, accepted):
    cmd = join_cmd(plan="elderly_cancer", national_id=synthetic_id(REGION, birth, 5))
    if accepted:
        assert do_join(cmd).plan == "elderly_cancer"
    else:
        assert reason_of(do_join, cmd) == "AGE_OUT_OF_BAND"


BANDS = {  # plan: (minimum age in days, years at which the person is too old)
    "critical_illness": (30, 60),
    "chronic_cancer": (30, 60),
    "elderly_cancer": (None, 71),
}


def _inside_band(plan: str, birth: date, joined_on: date) -> bool:
    min_days, too_old_at = BANDS[plan]
    if plan == "elderly_cancer":
        old_enough = joined_on >= add_years(birth, 60)
    else:
        old_enough = (joined_on - birth).days >= min_days
    return old_enough and joined_on < add_years(birth, too_old_at)


@given(plan=st.sampled_from(sorted(BANDS)),
       joined_on=st.dates(min_value=date(2018, 10, 16), max_value=date(2030, 12, 31)),
       age_days=st.integers(min_value=0, max_value=80 * 366))
def test_join_accepts_exactly_the_ages_inside_the_band(plan, joined_on, age_days):
    birth = joined_on - timedelta(days=age_days)
    cmd = join_cmd(plan=plan, joined_on=joined_on, national_id=synthetic_id(REGION, birth, 9),
                   chronic_conditions=("fatty_liver",) if plan == "chronic_cancer" else ())
    version = RULES.version_on(joined_on)
    if _inside_band(plan, birth, joined_on):
        event = do_join(cmd, rules=version)
        assert event.birth_date == birth
        assert event.waiting_period_ends_on == joined_on + timedelta(days=90)
    else:
        assert reason_of(do_join, cmd, rules=version) == "AGE_OUT_OF_BAND"


# -- leave ---------------------------------------------------------------------------------

def test_leave_active_member_emits_member_left():
    event = leave(LeavePlan(member_id="m-2", left_on=date(2024, 6, 1)),
                  member("m-2", payer_id="m-1", relation="child"), active_family=0, rules=VERSION)
    assert isinstance(event, MemberLeft)
    assert (event.member_id, event.payer_id, event.plan, event.left_on) == \
        ("m-2", "m-1", "critical_illness", date(2024, 6, 1))


def test_leave_on_the_join_day_is_allowed():
    assert leave(LeavePlan(member_id="m-1", left_on=JOINED_ON), member(),
                 active_family=0, rules=VERSION).left_on == JOINED_ON


def test_leave_family_member_is_not_blocked_by_the_count_of_others():
    # active_family only blocks a payer
    event = leave(LeavePlan(member_id="m-2", left_on=date(2024, 6, 1)),
                  member("m-2", payer_id="m-1", relation="spouse"), active_family=3, rules=VERSION)
    assert event.member_id == "m-2"


def test_leave_unknown_member_is_unknown_member():
    assert reason_of(leave, LeavePlan(member_id="x", left_on=JOINED_ON), None,
                     active_family=0, rules=VERSION) == "UNKNOWN_MEMBER"


@pytest.mark.parametrize("status", [Status.LEFT, Status.LAPSED, Status.ENDED])
def test_leave_inactive_member_is_not_active(status):
    assert reason_of(leave, LeavePlan(member_id="m-1", left_on=date(2024, 6, 1)),
                     member(status=status), active_family=0, rules=VERSION) == "NOT_ACTIVE"


def test_leave_payer_with_active_family_is_family_still_active():
    assert reason_of(leave, LeavePlan(member_id="m-1", left_on=date(2024, 6, 1)), member(),
                     active_family=1, rules=VERSION) == "FAMILY_STILL_ACTIVE"


def test_leave_before_joining_is_invalid_date():
    assert reason_of(leave, LeavePlan(member_id="m-1", left_on=JOINED_ON - timedelta(days=1)),
                     member(), active_family=0, rules=VERSION) == "INVALID_DATE"


# -- lapse and end of coverage -------------------------------------------------------------

def test_lapse_lapses_only_the_active_members_of_the_payer():
    on = date(2024, 7, 28)
    members = [member("m-1"), member("m-2", payer_id="m-1", relation="child"),
               member("m-3", payer_id="m-1", relation="parent", status=Status.LEFT),
               member("m-4", payer_id="m-1", relation="spouse", status=Status.ENDED)]
    events = lapse(members, on)
    assert all(isinstance(e, MemberLapsed) for e in events)
    assert [(e.member_id, e.payer_id, e.plan, e.lapsed_on) for e in events] == [
        ("m-1", "m-1", "critical_illness", on), ("m-2", "m-1", "critical_illness", on)]


def test_lapse_of_nobody_is_empty():
    assert lapse([], date(2024, 7, 28)) == []
    assert lapse([member(status=Status.LAPSED)], date(2024, 7, 28)) == []


def test_end_after_benefit_ends_an_active_member():
    on = date(2024, 9, 1)
    events = end_after_benefit(member("m-2", payer_id="m-1", relation="child"), on)
    assert len(events) == 1 and isinstance(events[0], MemberCoverageEnded)
    assert (events[0].member_id, events[0].payer_id, events[0].ended_on, events[0].reason) == \
        ("m-2", "m-1", on, "benefit_paid")


@pytest.mark.parametrize("who", [None, member(status=Status.LEFT), member(status=Status.ENDED)])
def test_end_after_benefit_of_unknown_or_inactive_member_is_nothing(who):
    assert end_after_benefit(who, date(2024, 9, 1)) == []


# -- privacy: no event carries the clear name or ID ----------------------------------------

def test_no_membership_event_carries_the_clear_name_or_national_id():
    names_ids = [("张三明", NATIONAL_ID),
                 ("欧阳春华", synthetic_id("110101", date(1985, 12, 3), 456)),
                 ("李四", synthetic_id("440305", date(2001, 2, 28), 2))]
    events = []
    for i, (name, national_id) in enumerate(names_ids):
        cmd = join_cmd(member_id=f"p-{i}", payer_id=f"p-{i}", name=name,
                       national_id=national_id)
        joined = do_join(cmd)
        events.append(joined)
        state = Member(joined.member_id, joined.payer_id, joined.plan, joined.relation,
                       joined.birth_date, joined.joined_on, joined.waiting_period_ends_on,
                       Status.ACTIVE)
        events.append(leave(LeavePlan(member_id=state.member_id, left_on=date(2024, 8, 1)),
                            state, active_family=0, rules=VERSION))
        events.extend(lapse([state], date(2024, 8, 1)))
        events.extend(end_after_benefit(state, date(2024, 8, 1)))
        assert len(events) == 4 * (i + 1)
        for event in events[-4:]:
            dumped = event.model_dump_json()
            assert national_id not in dumped
            assert national_id[:17] not in dumped and national_id[6:14] not in dumped
            assert name not in dumped
        assert "*" in joined.masked_name and joined.masked_national_id.count("*") == 11
    assert {type(e) for e in events} == {MemberJoined, MemberLeft, MemberLapsed,
                                         MemberCoverageEnded}



@pytest.mark.domain
@pytest.mark.parametrize("status", [Status.LEFT, Status.LAPSED, Status.ENDED])
def test_a_former_member_can_be_erased(status: Status) -> None:
    cmd = EraseMember(member_id="m-1", requested_on=date(2021, 1, 1))
    assert erase(cmd, member(status=status)) == MemberErased(member_id="m-1",
                                                             erased_on=date(2021, 1, 1))


@pytest.mark.domain
def test_erasure_refused_while_covered_twice_or_for_nobody() -> None:
    cmd = EraseMember(member_id="m-1", requested_on=date(2021, 1, 1))
    for who, code in ((member(), "STILL_ACTIVE"), (None, "UNKNOWN_MEMBER")):
        with pytest.raises(Rejected) as exc:
            erase(cmd, who)
        assert exc.value.reason_code == code
    gone = Member(member_id="m-1", payer_id="m-1", plan="critical_illness", relation="self",
                  birth_date=None, joined_on=JOINED_ON, waiting_period_ends_on=JOINED_ON,
                  status=Status.LEFT, erased=True)
    with pytest.raises(Rejected) as exc:
        erase(cmd, gone)
    assert exc.value.reason_code == "ALREADY_ERASED"
