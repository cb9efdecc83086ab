"""Membership domain rules around batches and the calendar (SPEC §2-§3): ``rules.admit`` (the
one path for joins and imports), ``roll.last_sharing_date``, the dissolution alert of
``plan_size``, the age limit and the transfer after it. Pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.membership import (
    MemberCoverageEnded, MemberJoined, NewMember, PlanBelowDissolutionThreshold, TransferPlan)
from mutualaid.errors import Rejected
from mutualaid.identity import synthetic_id
from mutualaid.rulebook import load_rulebook

from membership.domain import plan_size
from membership.domain.model import Known, Member, Status
from membership.domain.plan_size import PlanSize
from membership.domain.roll import last_sharing_date
from membership.domain.rules import (
    Admission, admit, end_at_age_limit, join, read_person, rules_on, transfer)

RULEBOOK = load_rulebook()
JOINED_ON = date(2020, 3, 2)
CI = RULEBOOK.plan_on("critical_illness", JOINED_ON)
REGION = "310104"


def hasher(value: str) -> str:
    """A stand-in for the keyed hash: deterministic and recognisable."""
    return f"h({value})"


def new_member(member_id: str, *, payer_id: str | None = None, relation: str = "self",
               birth: date = date(1985, 4, 10), seq: int = 1, national_id: str | None = None,
               plan: str = "critical_illness", score: int | None = 700,
               joined_on: date = JOINED_ON) -> NewMember:
    return NewMember(
        member_id=member_id, payer_id=payer_id or member_id, plan=plan,
        national_id=national_id or synthetic_id(REGION, birth, seq), name="王建国",
        relation=relation, payer_credit_score=score if relation == "self" else None,
        health_declaration=True, joined_on=joined_on)


def member(member_id: str = "m-1", *, birth: date = date(1960, 7, 1),
           plan: str = "critical_illness", status: Status = Status.ACTIVE,
           end_reason: str | None = None, joined_on: date = JOINED_ON,
           payer_id: str | None = None, relation: str = "self") -> Member:
    return Member(member_id, payer_id or member_id, plan, relation, birth, joined_on,
                  joined_on + timedelta(days=90), status, end_reason)


def reasons(outcomes: list[Admission | Rejected]) -> list[str]:
    return ["ok" if isinstance(o, Admission) else o.reason_code for o in outcomes]


def x_checked_id() -> str:
    """A valid ID whose check character is X (so it can be written with a lower-case x)."""
    for seq in range(1000):
        value = synthetic_id(REGION, date(1980, 1, 1), seq)
        if value.endswith("X"):
            return value
    raise AssertionError("no X-checked ID in the sequence range")


# -- rules.admit ---------------------------------------------------------------------------

@pytest.mark.domain
def test_admit_a_payer_and_their_family_in_one_batch_admits_both_and_updates_known():
    payer = new_member("p-1", seq=1)
    spouse = new_member("f-1", payer_id="p-1", relation="spouse", birth=date(1987, 9, 3),
                        seq=2)
    known = Known()
    outcomes = admit([payer, spouse], rulebook=RULEBOOK, hasher=hasher, known=known)
    assert reasons(outcomes) == ["ok", "ok"]
    p, f = outcomes
    assert isinstance(p, Admission) and isinstance(f, Admission)
    assert f.event.payer_id == "p-1" and f.event.relation == "spouse"
    assert p.id_hash == hasher(payer.national_id) and f.id_hash == hasher(spouse.national_id)
    assert p.name == "王建国" and p.event.masked_name == "王*国"
    assert p.event.waiting_period_ends_on == date(2020, 5, 31)
    assert p.event.rule_version == "2020-01-01"
    # what later joins of the same batch (and of the same command) will see
    assert known.taken_member_ids == {"p-1", "f-1"}
    assert known.active_id_hashes == {p.id_hash, f.id_hash}
    assert set(known.payers) == {"p-1"}  # a family member pays for nobody
    assert known.payers["p-1"].status is Status.ACTIVE
    assert known.payers["p-1"].waiting_period_ends_on == date(2020, 5, 31)


@pytest.mark.domain
def test_admit_family_before_their_payer_in_the_batch_is_payer_not_active():
    spouse = new_member("f-1", payer_id="p-1", relation="spouse", seq=2)
    payer = new_member("p-1", seq=1)
    known = Known()
    outcomes = admit([spouse, payer], rulebook=RULEBOOK, hasher=hasher, known=known)
    assert reasons(outcomes) == ["PAYER_NOT_ACTIVE", "ok"]
    assert known.taken_member_ids == {"p-1"}  # the refused row leaves no trace
    assert known.active_id_hashes == {hasher(payer.national_id)}


@pytest.mark.domain
def test_admit_family_of_a_payer_the_store_already_knows():
    stored = member("p-9", birth=date(1980, 1, 1), joined_on=date(2019, 5, 1))
    spouse = new_member("f-9", payer_id="p-9", relation="spouse", seq=5)
    outcomes = admit([spouse], rulebook=RULEBOOK, hasher=hasher,
                     known=Known(payers={"p-9": stored}))
    assert reasons(outcomes) == ["ok"]


@pytest.mark.domain
def test_admit_family_of_a_payer_refused_earlier_in_the_batch_is_payer_not_active():
    payer = new_member("p-1", seq=1, score=600)
    child = new_member("c-1", payer_id="p-1", relation="child", birth=date(2012, 6, 1), seq=3)
    known = Known()
    outcomes = admit([payer, child], rulebook=RULEBOOK, hasher=hasher, known=known)
    assert reasons(outcomes) == ["CREDIT_SCORE_TOO_LOW", "PAYER_NOT_ACTIVE"]
    assert known == Known()


@pytest.mark.domain
def test_admit_the_same_person_twice_in_one_batch_refuses_the_second():
    first = new_member("p-1", seq=1)
    again = new_member("p-2", national_id=first.national_id)
    known = Known()
    outcomes = admit([first, again], rulebook=RULEBOOK, hasher=hasher, known=known)
    assert reasons(outcomes) == ["ok", "ALREADY_A_MEMBER"]
    assert known.taken_member_ids == {"p-1"} and set(known.payers) == {"p-1"}


@pytest.mark.domain
def test_admit_the_same_person_with_a_lower_case_check_character_is_still_the_same_person():
    upper = x_checked_id()
    first = new_member("p-1", national_id=upper)
    again = new_member("p-2", national_id=upper[:17] + "x")
    outcomes = admit([first, again], rulebook=RULEBOOK, hasher=hasher, known=Known())
    assert reasons(outcomes) == ["ok", "ALREADY_A_MEMBER"]


@pytest.mark.domain
def test_admit_a_person_with_an_active_membership_in_the_store_is_already_a_member():
    cmd = new_member("p-1", seq=1)
    known = Known(active_id_hashes={hasher(cmd.national_id)})
    assert reasons(admit([cmd], rulebook=RULEBOOK, hasher=hasher, known=known)) == [
        "ALREADY_A_MEMBER"]


@pytest.mark.domain
def test_admit_a_taken_member_id_is_member_id_taken():
    cmd = new_member("p-1", seq=1)
    known = Known(taken_member_ids={"p-1"})
    outcomes = admit([cmd], rulebook=RULEBOOK, hasher=hasher, known=known)
    assert reasons(outcomes) == ["MEMBER_ID_TAKEN"]
    assert known.active_id_hashes == set()  # the person was not recorded


@pytest.mark.domain
def test_admit_the_same_member_id_twice_in_one_batch_is_member_id_taken():
    first = new_member("p-1", seq=1)
    other_person = new_member("p-1", seq=2, birth=date(1990, 1, 1))
    outcomes = admit([first, other_person], rulebook=RULEBOOK, hasher=hasher, known=Known())
    assert reasons(outcomes) == ["ok", "MEMBER_ID_TAKEN"]


@pytest.mark.domain
def test_admit_reports_an_invalid_id_and_carries_on_with_the_batch():
    good = new_member("p-1", seq=1)
    bad_check = "0" if good.national_id[-1] != "0" else "1"
    bad = new_member("p-2", national_id=good.national_id[:17] + bad_check)
    later = new_member("p-3", seq=7, birth=date(1991, 2, 3))
    outcomes = admit([bad, good, later], rulebook=RULEBOOK, hasher=hasher, known=Known())
    assert reasons(outcomes) == ["ID_CHECKSUM", "ok", "ok"]


@pytest.mark.domain
def test_admit_judges_each_join_by_the_rule_version_of_its_join_date():
    old = new_member("p-1", seq=1, joined_on=date(2018, 11, 1))
    new = new_member("p-2", seq=2, birth=date(1990, 1, 1), joined_on=date(2020, 3, 2))
    outcomes = admit([old, new], rulebook=RULEBOOK, hasher=hasher, known=Known())
    assert [o.event.rule_version for o in outcomes if isinstance(o, Admission)] == [
        "2018-10-16", "2020-01-01"]


# -- roll.last_sharing_date ----------------------------------------------------------------

@pytest.mark.domain
@pytest.mark.parametrize(("joined_on", "left_on", "expected"), [
    # left after the 21st: still on that round's roll, though gone before its sharing day
    (date(2020, 3, 2), date(2020, 4, 25), date(2020, 4, 28)),
    (date(2020, 3, 2), date(2020, 4, 22), date(2020, 4, 28)),
    # left on a publicity day: not a member through that day, so the round before
    (date(2020, 3, 2), date(2020, 4, 21), date(2020, 4, 14)),
    (date(2020, 3, 2), date(2020, 4, 8), date(2020, 4, 14)),
    # month boundary: left before the month's first publicity day
    (date(2020, 3, 2), date(2020, 4, 7), date(2020, 3, 28)),
    (date(2020, 3, 2), date(2020, 4, 1), date(2020, 3, 28)),
    # year boundary
    (date(2019, 11, 30), date(2020, 1, 5), date(2019, 12, 28)),
    # February of a leap year: the 28th is still the sharing day
    (date(2020, 1, 25), date(2020, 3, 1), date(2020, 2, 28)),
    # a long membership: only the last roll counts
    (date(2018, 11, 1), date(2020, 6, 30), date(2020, 6, 28)),
    # joined the day before a publicity day, left the day after it
    (date(2020, 3, 6), date(2020, 3, 8), date(2020, 3, 14)),
    (date(2020, 3, 20), date(2020, 3, 22), date(2020, 3, 28)),
    # joined on a publicity day: that day's roll is already fixed
    (date(2020, 4, 7), date(2020, 4, 22), date(2020, 4, 28)),
    (date(2020, 4, 7), date(2020, 4, 20), None),
    (date(2020, 4, 7), date(2020, 4, 21), None),
    # joined after the month's last publicity day
    (date(2020, 4, 22), date(2020, 4, 30), None),
    (date(2020, 4, 22), date(2020, 5, 7), None),
    (date(2020, 4, 22), date(2020, 5, 8), date(2020, 5, 14)),
    (date(2020, 12, 22), date(2021, 1, 7), None),
    (date(2020, 12, 22), date(2021, 1, 8), date(2021, 1, 14)),
    # between the two publicity days of one month
    (date(2020, 3, 6), date(2020, 3, 7), None),
    (date(2020, 3, 10), date(2020, 3, 20), None),
    # left on the join day
    (date(2020, 3, 8), date(2020, 3, 8), None),
])
def test_last_sharing_date_hand_worked_cases(joined_on, left_on, expected):
    assert last_sharing_date(joined_on, left_on, CI) == expected


def _publicity_days_between(joined_on: date, left_on: date) -> list[date]:
    """Brute force: every publicity day strictly between the two dates."""
    found: list[date] = []
    year, month = joined_on.year, joined_on.month
    while (year, month) <= (left_on.year, left_on.month):
        found += [date(year, month, d) for d in CI.publicity_days
                  if joined_on < date(year, month, d) < left_on]
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return found


_days = st.dates(min_value=date(2018, 10, 16), max_value=date(2030, 12, 31))


@pytest.mark.domain
@given(joined_on=_days, stay=st.integers(min_value=0, max_value=800))
def test_last_sharing_date_is_a_sharing_day_whose_publicity_day_falls_inside_the_membership(
        joined_on, stay):
    left_on = joined_on + timedelta(days=stay)
    result = last_sharing_date(joined_on, left_on, CI)
    between = _publicity_days_between(joined_on, left_on)
    if result is None:
        assert between == []
        return
    assert result.day in (14, 28)
    publicity = result.replace(day=7 if result.day == 14 else 21)
    assert joined_on < publicity < left_on
    # and it is the last such round
    assert publicity == max(between)


# -- plan_size.alerts ----------------------------------------------------------------------

@pytest.mark.domain
def test_reaching_the_threshold_sets_reached_without_an_alert():
    events, reached = plan_size.alerts([PlanSize("critical_illness", 3, False)],
                                       {"critical_illness": 3}, date(2020, 4, 25))
    assert events == [] and reached == {"critical_illness": True}


@pytest.mark.domain
def test_falling_below_after_reaching_alerts_once_and_clears_reached():
    events, reached = plan_size.alerts([PlanSize("critical_illness", 2, True)],
                                       {"critical_illness": 3}, date(2020, 4, 25))
    assert events == [PlanBelowDissolutionThreshold(
        plan="critical_illness", active_members=2, threshold=3, detected_on=date(2020, 4, 25),
        carries_on_until=date(2021, 4, 25))]
    assert reached == {"critical_illness": False}


@pytest.mark.domain
def test_falling_below_never_having_reached_is_no_alert():
    events, reached = plan_size.alerts([PlanSize("critical_illness", 2, False)],
                                       {"critical_illness": 3}, date(2020, 4, 25))
    assert events == [] and reached == {}


@pytest.mark.domain
def test_staying_above_a_reached_threshold_changes_nothing():
    events, reached = plan_size.alerts([PlanSize("critical_illness", 3, True),
                                        PlanSize("elderly_cancer", 10, True)],
                                       {"critical_illness": 3, "elderly_cancer": 3},
                                       date(2020, 4, 25))
    assert events == [] and reached == {}


@pytest.mark.domain
def test_alerts_are_per_plan():
    events, reached = plan_size.alerts(
        [PlanSize("chronic_cancer", 1, True), PlanSize("critical_illness", 5, False),
         PlanSize("elderly_cancer", 0, False)],
        {"chronic_cancer": 2, "critical_illness": 5, "elderly_cancer": 1}, date(2020, 2, 29))
    assert [(e.plan, e.active_members, e.threshold) for e in events] == [
        ("chronic_cancer", 1, 2)]
    assert events[0].carries_on_until == date(2021, 2, 28)  # one year after Feb 29
    assert reached == {"chronic_cancer": False, "critical_illness": True}


@pytest.mark.domain
def test_moved_counts_both_sides_of_a_change():
    deltas: plan_size.Deltas = plan_size.Deltas()
    plan_size.moved(deltas, "critical_illness", None, "active")
    plan_size.moved(deltas, "critical_illness", None, "active")
    plan_size.moved(deltas, "critical_illness", "active", "left")
    plan_size.moved(deltas, "critical_illness", "ended", "active", to_plan="elderly_cancer")
    assert {k: v for k, v in deltas.items() if v} == {
        ("critical_illness", "active"): 1, ("critical_illness", "left"): 1,
        ("critical_illness", "ended"): -1, ("elderly_cancer", "active"): 1}


# -- rules.end_at_age_limit ----------------------------------------------------------------

@pytest.mark.domain
def test_end_at_age_limit_ends_a_60_year_old_and_spares_a_59_year_old():
    sixty = member("m-60", birth=date(1960, 7, 1))
    fifty_nine = member("m-59", birth=date(1960, 7, 2))
    ended = end_at_age_limit([sixty, fifty_nine], date(2020, 7, 1))
    assert ended == [MemberCoverageEnded(member_id="m-60", payer_id="m-60",
                                         plan="critical_illness", ended_on=date(2020, 7, 1),
                                         reason="age_limit")]
    assert end_at_age_limit([sixty], date(2020, 6, 30)) == []


@pytest.mark.domain
def test_end_at_age_limit_ends_members_older_than_60_too():
    assert [e.member_id for e in end_at_age_limit([member(birth=date(1958, 1, 1))],
                                                  date(2020, 7, 1))] == ["m-1"]


@pytest.mark.domain
@pytest.mark.parametrize(("birth", "on", "ended"), [
    # a leap-year 60th birthday falls on Feb 29 itself
    (date(1960, 2, 29), date(2020, 2, 28), False),
    (date(1960, 2, 29), date(2020, 2, 29), True),
    # in a common year the person is 60 on Mar 1 (2100 is not a leap year)
    (date(2040, 2, 29), date(2100, 2, 28), False),
    (date(2040, 2, 29), date(2100, 3, 1), True),
])
def test_end_at_age_limit_for_feb_29_birthdays(birth, on, ended):
    assert bool(end_at_age_limit([member(birth=birth)], on)) is ended


@pytest.mark.domain
@pytest.mark.parametrize("plan", ["elderly_cancer", "chronic_cancer"])
def test_end_at_age_limit_applies_only_to_critical_illness(plan):
    assert end_at_age_limit([member(birth=date(1955, 1, 1), plan=plan)],
                            date(2020, 7, 1)) == []


@pytest.mark.domain
@pytest.mark.parametrize("status", [Status.LEFT, Status.LAPSED, Status.ENDED])
def test_end_at_age_limit_applies_only_to_active_members(status):
    assert end_at_age_limit([member(birth=date(1955, 1, 1), status=status)],
                            date(2020, 7, 1)) == []


# -- rules.transfer after the age limit ----------------------------------------------------

def _transfer(m: Member, on: date = date(2020, 7, 1), to_plan: str = "elderly_cancer", *,
              elsewhere: bool = False, payer: Member | None = None):
    return transfer(TransferPlan(member_id=m.member_id, to_plan=to_plan, transferred_on=on),
                    m, rules=RULEBOOK.version_on(on), person_active_elsewhere=elsewhere,
                    payer=payer)


@pytest.mark.domain
def test_transfer_is_refused_when_the_person_has_another_active_membership():
    with pytest.raises(Rejected) as info:
        _transfer(member(status=Status.ENDED, end_reason="age_limit"), elsewhere=True)
    assert info.value.reason_code == "ALREADY_A_MEMBER"


@pytest.mark.domain
def test_a_family_member_transfers_only_while_their_payer_is_active():
    parent = replace(member(status=Status.ENDED, end_reason="age_limit"), relation="parent",
                     payer_id="payer-1")
    payer = replace(member(), member_id="payer-1")
    assert _transfer(parent, payer=payer).to_plan == "elderly_cancer"
    for gone in (None, replace(payer, status=Status.LEFT)):
        with pytest.raises(Rejected) as info:
            _transfer(parent, payer=gone)
        assert info.value.reason_code == "PAYER_NOT_ACTIVE"


@pytest.mark.domain
def test_transfer_from_ended_at_the_age_limit_keeps_the_original_waiting_period():
    ended = member(status=Status.ENDED, end_reason="age_limit")
    moved = _transfer(ended)
    assert (moved.member_id, moved.from_plan, moved.to_plan, moved.transferred_on) == (
        "m-1", "critical_illness", "elderly_cancer", date(2020, 7, 1))
    assert moved.waiting_period_ends_on == date(2020, 5, 31) == ended.waiting_period_ends_on


@pytest.mark.domain
def test_transfer_of_an_active_60_year_old_is_allowed():
    assert _transfer(member()).waiting_period_ends_on == date(2020, 5, 31)


@pytest.mark.domain
@pytest.mark.parametrize(("status", "end_reason"), [
    (Status.ENDED, "benefit_paid"), (Status.LEFT, None), (Status.LAPSED, None)])
def test_transfer_from_any_other_end_is_not_active(status, end_reason):
    with pytest.raises(Rejected) as info:
        _transfer(member(status=status, end_reason=end_reason))
    assert info.value.reason_code == "NOT_ACTIVE"


@pytest.mark.domain
def test_transfer_before_60_is_age_out_of_band():
    with pytest.raises(Rejected) as info:
        _transfer(member(birth=date(1960, 7, 2)))
    assert info.value.reason_code == "AGE_OUT_OF_BAND"


@pytest.mark.domain
def test_transfer_the_other_way_is_not_allowed():
    with pytest.raises(Rejected) as info:
        _transfer(member(plan="elderly_cancer"), to_plan="critical_illness")
    assert info.value.reason_code == "TRANSFER_NOT_ALLOWED"


# -- the batch path decides as the single join does ----------------------------------------

def _single(cmd: NewMember, known: Known) -> str | Admission:
    """The same join decided on its own by ``read_person`` and ``join``."""
    if cmd.member_id in known.taken_member_ids:
        return "MEMBER_ID_TAKEN"
    try:
        person = read_person(cmd.national_id, cmd.joined_on)
        event = join(cmd, rules=rules_on(RULEBOOK, cmd.joined_on), person=person,
                     payer=None if cmd.relation == "self" else known.payers.get(cmd.payer_id),
                     person_has_active_membership=hasher(person.value) in known.active_id_hashes)
    except Rejected as refused:
        return refused.reason_code
    return Admission(event, hasher(person.value), cmd.name)


@pytest.mark.domain
@given(relation=st.sampled_from(["self", "spouse", "child"]),
       plan=st.sampled_from(["critical_illness", "elderly_cancer", "chronic_cancer"]),
       birth=st.dates(min_value=date(1940, 1, 1), max_value=date(2021, 1, 1)),
       joined_on=st.dates(min_value=date(2017, 1, 1), max_value=date(2026, 12, 31)),
       score=st.sampled_from([None, 600, 650, 800]),
       declared=st.booleans(),
       conditions=st.sampled_from([(), ("fatty_liver",), ("asthma",)]),
       id_damage=st.sampled_from(["none", "checksum", "region", "lower_x"]),
       taken=st.booleans(), active=st.booleans(),
       payer=st.sampled_from(["none", "active", "left"]),
       own_payer=st.booleans())
def test_admit_decides_every_join_as_join_does_and_its_event_is_valid(
        relation, plan, birth, joined_on, score, declared, conditions, id_damage, taken,
        active, payer, own_payer):
    national_id = synthetic_id(REGION, birth, 17)
    if id_damage == "checksum":
        national_id = national_id[:17] + ("0" if national_id[17] != "0" else "1")
    elif id_damage == "region":
        national_id = "99" + national_id[2:]
    elif id_damage == "lower_x":
        national_id = national_id[:17] + national_id[17].lower()
    cmd = NewMember(member_id="m-1", payer_id="m-1" if own_payer else "p-1", plan=plan,
                    national_id=national_id, name="欧阳建华", relation=relation,
                    payer_credit_score=score, health_declaration=declared,
                    chronic_conditions=conditions, joined_on=joined_on)
    stored_payer = {"none": {}, "active": {"p-1": member("p-1")},
                    "left": {"p-1": member("p-1", status=Status.LEFT)}}[payer]

    def known() -> Known:
        return Known({"m-1"} if taken else set(),
                     {hasher(national_id[:17] + national_id[17:].upper())} if active else set(),
                     dict(stored_payer))

    [batch] = admit([cmd], rulebook=RULEBOOK, hasher=hasher, known=known())
    single = _single(cmd, known())
    if isinstance(single, str):
        assert isinstance(batch, Rejected) and batch.reason_code == single
        return
    assert isinstance(batch, Admission) and batch == single
    assert MemberJoined.model_validate_json(batch.event.model_dump_json()) == batch.event
    assert "*" in batch.event.masked_name and national_id not in batch.event.model_dump_json()


@pytest.mark.domain
def test_admit_a_join_dated_before_the_first_rule_version_is_invalid_date():
    cmd = new_member("p-1", joined_on=date(2000, 1, 1), birth=date(1970, 1, 1))
    assert reasons(admit([cmd], rulebook=RULEBOOK, hasher=hasher, known=Known())) == [
        "INVALID_DATE"]
