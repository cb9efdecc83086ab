"""Claims domain rules (SPEC §2, §4): filing checks, investigation, reviews, outcome. Pure."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.claims import (
    CaseApproved, CaseReadyForPublicity, CaseRejected, ClaimFiled, ClaimInvestigated,
    ClaimReviewed, FileClaim, RecordInvestigation, ReviewClaim)
from mutualaid.contracts.common import Document
from mutualaid.errors import Rejected
from mutualaid.identity import mask_id, mask_name, synthetic_id
from mutualaid.rulebook import load_rulebook

from claims.domain.model import BEFORE_THE_JURY, TERMINAL, Case, Coverage, State
from claims.domain.rules import (
    age_band, approve, file, investigate, published, refuse_after_jury, review, withdraw)

pytestmark = pytest.mark.domain

RULES = load_rulebook()
BIRTH = date(1985, 6, 10)
NATIONAL_ID = synthetic_id("310104", BIRTH, 321)
JOINED_ON = date(2022, 1, 5)
WAITING_ENDS = JOINED_ON + timedelta(days=90)
DIAGNOSED_ON = date(2023, 3, 1)  # age 37
DOC = Document(kind="hospital_record", sha256="ab" * 32)


# -- helpers -------------------------------------------------------------------------------

def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def cover(**changes: object) -> Coverage:
    data: dict[str, object] = dict(
        member_id="m-1", payer_id="p-1", plan="critical_illness",
        masked_name=mask_name("王小红"), masked_national_id=mask_id(NATIONAL_ID),
        birth_date=BIRTH, joined_on=JOINED_ON, waiting_period_ends_on=WAITING_ENDS)
    data.update(changes)
    return Coverage(**data)


def claim(**changes: object) -> FileClaim:
    data: dict[str, object] = dict(
        case_id="c-1", member_id="m-1", illness_code="malignant_tumour",
        diagnosed_on=DIAGNOSED_ON, hospital="Ruijin Hospital", documents=(DOC,))
    data.update(changes)
    return FileClaim(**data)


def do_file(cmd: FileClaim | None = None, cov: Coverage | None | str = "default", *,
            has_case: bool = False):
    return file(cmd or claim(), cover() if cov == "default" else cov, rulebook=RULES,
                member_has_open_or_paid_case=has_case)


def case_in(state: State, **changes: object) -> Case:
    """A case in that state, whose investigation (where it had one) verified the records."""
    case, _ = do_file()
    return case.moved(state, **{"verified": True, **changes})


def review_cmd(stage: str = "review", approved: bool = True, **changes: object) -> ReviewClaim:
    data: dict[str, object] = dict(case_id="c-1", stage=stage, reviewer="reviewer-7",
                                   approved=approved, reviewed_on=date(2023, 4, 1))
    data.update(changes)
    return ReviewClaim(**data)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


# -- file: success -------------------------------------------------------------------------

def test_file_emits_claim_filed_with_benefit_and_rule_version():
    case, events = do_file()
    assert case.state is State.FILED
    assert len(events) == 1 and isinstance(events[0], ClaimFiled)
    filed = events[0]
    assert (filed.case_id, filed.member_id, filed.payer_id, filed.plan) == \
        ("c-1", "m-1", "p-1", "critical_illness")
    assert filed.illness_code == "malignant_tumour" and filed.diagnosed_on == DIAGNOSED_ON
    assert filed.hospital == "Ruijin Hospital" and filed.is_accident is False
    assert filed.age_at_diagnosis == 37 == case.age_at_diagnosis
    assert filed.benefit_fen == 30_000_000 == case.benefit_fen
    assert filed.rule_version == "2020-01-01" == case.rule_version
    assert filed.documents == (DOC,)


def test_file_judges_by_the_rule_version_in_force_on_the_diagnosis_date():
    cov = cover(joined_on=date(2018, 10, 20), waiting_period_ends_on=date(2019, 1, 18))
    _, events = do_file(claim(diagnosed_on=date(2019, 6, 1)), cov)
    assert events[0].rule_version == "2019-01-01"


@pytest.mark.parametrize("plan, age, benefit", [
    ("critical_illness", 39, 30_000_000),
    ("critical_illness", 40, 10_000_000),
    ("chronic_cancer", 39, 30_000_000),
    ("chronic_cancer", 40, 10_000_000),
])
def test_file_benefit_depends_on_age_band_at_diagnosis(plan, age, benefit):
    birthday_40 = add_years(BIRTH, 40)
    diagnosed_on = birthday_40 - timedelta(days=1) if age == 39 else birthday_40
    case, events = do_file(claim(diagnosed_on=diagnosed_on), cover(plan=plan))
    assert events[0].age_at_diagnosis == age
    assert events[0].benefit_fen == benefit == case.benefit_fen


def test_file_elderly_cancer_benefit_is_100000_cny():
    birth = date(1958, 2, 1)
    cov = cover(plan="elderly_cancer", birth_date=birth)
    _, events = do_file(claim(illness_code="leukaemia"), cov)
    assert events[0].age_at_diagnosis == 65
    assert events[0].benefit_fen == 10_000_000


def test_file_accident_is_covered_from_day_one():
    _, events = do_file(claim(illness_code="severe_head_injury", diagnosed_on=JOINED_ON,
                              is_accident=True))
    assert events[0].is_accident is True
    assert events[0].diagnosed_on == JOINED_ON


def test_file_on_the_day_the_waiting_period_ends_is_covered():
    _, events = do_file(claim(diagnosed_on=WAITING_ENDS))
    assert events[0].diagnosed_on == WAITING_ENDS


# -- file: one test per reason code --------------------------------------------------------

def test_file_without_coverage_is_not_a_member():
    assert reason_of(do_file, claim(), None) == "NOT_A_MEMBER"


def test_file_for_a_member_whose_coverage_stopped_before_the_diagnosis_is_not_covered():
    stopped = cover(covered_until=DIAGNOSED_ON)
    assert reason_of(do_file, claim(), stopped) == "NOT_COVERED"


def test_file_after_leaving_for_an_illness_diagnosed_while_covered_is_accepted():
    _, events = do_file(claim(), cover(covered_until=DIAGNOSED_ON + timedelta(days=1)))
    assert events[0].TYPE == "claims.ClaimFiled"


def test_file_diagnosed_before_joining_is_not_covered():
    cmd = claim(diagnosed_on=JOINED_ON - timedelta(days=1), is_accident=True)
    assert reason_of(do_file, cmd) == "NOT_COVERED"


def test_file_diagnosed_in_waiting_period_is_waiting_period():
    cmd = claim(diagnosed_on=WAITING_ENDS - timedelta(days=1))
    assert reason_of(do_file, cmd) == "WAITING_PERIOD"


@pytest.mark.parametrize("plan, illness", [
    ("critical_illness", "common_cold"),
    ("elderly_cancer", "stroke_sequelae"),    # cancer-only plan
    ("chronic_cancer", "acute_myocardial_infarction"),
])
def test_file_uncovered_illness_is_illness_not_covered(plan, illness):
    birth = date(1958, 2, 1) if plan == "elderly_cancer" else BIRTH
    cmd = claim(illness_code=illness)
    assert reason_of(do_file, cmd, cover(plan=plan, birth_date=birth)) == "ILLNESS_NOT_COVERED"


def test_file_second_case_is_one_benefit_per_member():
    assert reason_of(do_file, claim(), has_case=True) == "ONE_BENEFIT_PER_MEMBER"


def test_file_at_an_age_without_benefit_band_is_age_not_covered():
    # joined critical_illness at 59, still active and diagnosed at 60
    birth = date(1963, 1, 10)
    cov = cover(birth_date=birth, joined_on=date(2022, 6, 1),
                waiting_period_ends_on=date(2022, 8, 30))
    assert reason_of(do_file, claim(diagnosed_on=date(2023, 2, 1)), cov) == "AGE_NOT_COVERED"


@given(age_days=st.integers(min_value=0, max_value=62 * 365))
def test_file_benefit_matches_the_rulebook_band_for_every_age(age_days):
    diagnosed_on = date(2023, 3, 1)
    birth = diagnosed_on - timedelta(days=age_days + 200)
    cov = cover(birth_date=birth, joined_on=birth + timedelta(days=30),
                waiting_period_ends_on=birth + timedelta(days=120))
    if add_years(birth, 60) <= diagnosed_on:
        assert reason_of(do_file, claim(diagnosed_on=diagnosed_on), cov) == "AGE_NOT_COVERED"
        return
    _, events = do_file(claim(diagnosed_on=diagnosed_on), cov)
    expected = 30_000_000 if diagnosed_on < add_years(birth, 40) else 10_000_000
    assert events[0].benefit_fen == expected


# SPEC §3/§4: for malignancy the waiting period counts from when the illness was first
# *suspected*; FileClaim.suspected_on and the rulebook's pre_existing_lookback_days are
# never read by claims.domain.rules.file, so such a claim is accepted.
def test_file_malignancy_first_suspected_in_waiting_period_is_refused():
    cmd = claim(illness_code="malignant_tumour", suspected_on=JOINED_ON + timedelta(days=20),
                diagnosed_on=WAITING_ENDS + timedelta(days=30))
    with pytest.raises(Rejected) as exc:
        do_file(cmd)
    assert exc.value.reason_code == "PRE_EXISTING"


def test_file_malignancy_suspected_in_waiting_period_but_diagnosed_after_lookback_is_covered():
    cmd = claim(illness_code="malignant_tumour", suspected_on=JOINED_ON + timedelta(days=20),
                diagnosed_on=WAITING_ENDS + timedelta(days=91))
    _, events = do_file(cmd)
    assert events[0].TYPE == "claims.ClaimFiled"


def test_file_malignancy_first_suspected_after_waiting_period_is_covered():
    cmd = claim(illness_code="malignant_tumour", suspected_on=WAITING_ENDS,
                diagnosed_on=WAITING_ENDS + timedelta(days=10))
    _, events = do_file(cmd)
    assert events[0].TYPE == "claims.ClaimFiled"


# -- investigate ---------------------------------------------------------------------------

def investigation(**changes: object) -> RecordInvestigation:
    data: dict[str, object] = dict(case_id="c-1", investigator="Acme Investigations",
                                   verified=True, summary="records match",
                                   documents=(DOC,), investigated_on=date(2023, 3, 20))
    data.update(changes)
    return RecordInvestigation(**data)


def test_investigate_moves_filed_case_and_emits_claim_investigated():
    case, events = investigate(investigation(), case_in(State.FILED))
    assert case.state is State.INVESTIGATED
    assert case.investigation_summary == "records match"
    assert len(events) == 1 and isinstance(events[0], ClaimInvestigated)
    e = events[0]
    assert (e.case_id, e.investigator, e.verified, e.summary, e.documents, e.investigated_on) \
        == ("c-1", "Acme Investigations", True, "records match", (DOC,), date(2023, 3, 20))


def test_investigate_unknown_case_is_unknown_case():
    assert reason_of(investigate, investigation(), None) == "UNKNOWN_CASE"


@pytest.mark.parametrize("state", sorted(set(State) - {State.FILED,
                                                       State.UNDER_INVESTIGATION}))
def test_investigate_in_other_state_is_illegal_transition(state):
    assert reason_of(investigate, investigation(), case_in(state)) == "ILLEGAL_TRANSITION"


# -- review --------------------------------------------------------------------------------

def test_review_approved_moves_to_reviewed_with_one_event():
    case, events = review(review_cmd("review"), case_in(State.INVESTIGATED), cover())
    assert case.state is State.REVIEWED
    assert len(events) == 1 and isinstance(events[0], ClaimReviewed)
    e = events[0]
    assert (e.stage, e.approved, e.reviewer, e.rule_version) == \
        ("review", True, "reviewer-7", "2020-01-01")


@pytest.mark.parametrize("age, band", [(39, "30-39"), (40, "40-49")])
def test_final_review_emits_case_ready_for_publicity_masked_with_age_band(age, band):
    current = case_in(State.REVIEWED, age_at_diagnosis=age, investigation_summary="ok")
    case, events = review(review_cmd("final"), current, cover())
    assert case.state is State.FINAL_REVIEWED
    assert [type(e) for e in events] == [ClaimReviewed, CaseReadyForPublicity]
    ready = events[1]
    assert ready.age_band == band
    assert ready.masked_name == "王*红"
    assert ready.masked_national_id == NATIONAL_ID[:3] + "*" * 11 + NATIONAL_ID[-4:]
    assert NATIONAL_ID not in ready.model_dump_json() and "王小红" not in ready.model_dump_json()
    assert (ready.case_id, ready.member_id, ready.payer_id, ready.plan) == \
        ("c-1", "m-1", "p-1", "critical_illness")
    assert ready.benefit_fen == current.benefit_fen
    assert ready.investigation_summary == "ok"
    assert ready.illness_code == "malignant_tumour" and ready.hospital == "Ruijin Hospital"
    assert ready.ready_on == date(2023, 4, 1)


@pytest.mark.parametrize("stage, state", [("review", State.INVESTIGATED),
                                          ("final", State.REVIEWED)])
def test_refusal_at_either_stage_rejects_the_case_with_its_reason(stage, state):
    cmd = review_cmd(stage, approved=False, reason_code="DOCUMENTS_FORGED", note="mismatch")
    case, events = review(cmd, case_in(state), cover())
    assert case.state is State.REJECTED
    assert [type(e) for e in events] == [ClaimReviewed, CaseRejected]
    assert events[0].reason_code == "DOCUMENTS_FORGED" and events[0].approved is False
    rejected = events[1]
    assert (rejected.case_id, rejected.member_id, rejected.reason_code, rejected.message,
            rejected.rejected_on) == ("c-1", "m-1", "DOCUMENTS_FORGED", "mismatch",
                                      date(2023, 4, 1))


def test_review_unknown_case_is_unknown_case():
    assert reason_of(review, review_cmd(), None, cover()) == "UNKNOWN_CASE"


@pytest.mark.parametrize("stage, state", [
    ("review", State.FILED), ("review", State.REVIEWED),
    ("final", State.INVESTIGATED), ("final", State.FINAL_REVIEWED),
    ("final", State.APPROVED),
])
def test_review_out_of_order_is_illegal_transition(stage, state):
    assert reason_of(review, review_cmd(stage), case_in(state), cover()) == "ILLEGAL_TRANSITION"


@pytest.mark.parametrize("reason_code", [None, ""])
def test_refusal_without_reason_code_is_reason_required(reason_code):
    cmd = review_cmd("review", approved=False, reason_code=reason_code)
    assert reason_of(review, cmd, case_in(State.INVESTIGATED), cover()) == "REASON_REQUIRED"


@pytest.mark.parametrize("age, band", [(0, "0-9"), (9, "0-9"), (10, "10-19"), (59, "50-59"),
                                       (70, "70-79")])
def test_age_band(age, band):
    assert age_band(age) == band


# -- withdraw, publish, approve, refuse ----------------------------------------------------

@pytest.mark.parametrize("state", sorted(BEFORE_THE_JURY))
def test_withdraw_a_case_before_the_jury(state):
    assert withdraw("c-1", case_in(state)).state is State.WITHDRAWN


@pytest.mark.parametrize("state", [State.DISPUTED, State.IN_JURY, State.APPEALED])
def test_a_case_before_the_jury_cannot_be_withdrawn(state):
    assert reason_of(withdraw, "c-1", case_in(state)) == "ILLEGAL_TRANSITION"


def test_withdraw_unknown_case_is_unknown_case():
    assert reason_of(withdraw, "c-1", None) == "UNKNOWN_CASE"


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_withdraw_closed_case_is_illegal_transition(state):
    assert reason_of(withdraw, "c-1", case_in(state)) == "ILLEGAL_TRANSITION"


def test_published_moves_final_reviewed_case_only():
    assert published(case_in(State.FINAL_REVIEWED)).state is State.PUBLISHED
    assert published(None) is None
    assert published(case_in(State.REVIEWED)) is None


@pytest.mark.parametrize("state", [State.PUBLISHED, State.DISPUTED])
def test_approve_emits_case_approved_with_benefit(state):
    current = case_in(state)
    case, events = approve(current, date(2023, 5, 10))
    assert case.state is State.APPROVED
    assert len(events) == 1 and isinstance(events[0], CaseApproved)
    e = events[0]
    assert (e.case_id, e.member_id, e.payer_id, e.plan, e.benefit_fen, e.rule_version,
            e.diagnosed_on, e.approved_on) == (
        "c-1", "m-1", "p-1", "critical_illness", 30_000_000, "2020-01-01", DIAGNOSED_ON,
        date(2023, 5, 10))


@pytest.mark.parametrize("state", [State.FILED, State.FINAL_REVIEWED, State.APPROVED,
                                   State.REJECTED, State.WITHDRAWN])
def test_approve_in_other_state_does_nothing(state):
    assert approve(case_in(state), date(2023, 5, 10)) is None
    assert approve(None, date(2023, 5, 10)) is None


def test_refuse_after_jury_rejects_a_disputed_case():
    case, events = refuse_after_jury(case_in(State.DISPUTED), date(2023, 5, 12))
    assert case.state is State.REJECTED
    assert len(events) == 1 and isinstance(events[0], CaseRejected)
    assert (events[0].reason_code, events[0].rejected_on, events[0].member_id) == \
        ("JURY_REJECTED", date(2023, 5, 12), "m-1")


@pytest.mark.parametrize("state", [State.APPROVED, State.FINAL_REVIEWED])
def test_refuse_after_jury_of_an_undisputed_case_does_nothing(state):
    assert refuse_after_jury(case_in(state), date(2023, 5, 12)) is None
    assert refuse_after_jury(None, date(2023, 5, 12)) is None


# -- investigation start, four eyes, appeals, the jury ------------------------------------

from claims.domain.rules import (  # noqa: E402
    appeal, before_jury, disputed, jury_decided, start_investigation)
from mutualaid.contracts.claims import AppealClaim, StartInvestigation  # noqa: E402


def test_an_investigation_starts_only_on_a_filed_case():
    case, events = start_investigation(
        StartInvestigation(case_id="c-1", investigator="Acme", started_on=date(2023, 3, 2)),
        case_in(State.FILED))
    assert case.state is State.UNDER_INVESTIGATION
    assert [e.TYPE for e in events] == ["claims.InvestigationStarted"]
    assert reason_of(start_investigation, StartInvestigation(
        case_id="c-1", investigator="Acme", started_on=date(2023, 3, 2)),
        case_in(State.INVESTIGATED)) == "ILLEGAL_TRANSITION"


def test_a_case_whose_records_were_not_verified_cannot_pass_review():
    unverified = case_in(State.INVESTIGATED, verified=False)
    assert reason_of(review, review_cmd("review"), unverified, cover()) == \
        "INVESTIGATION_NOT_VERIFIED"
    case, _ = review(review_cmd("review", approved=False, reason_code="RECORDS_MISMATCH"),
                     unverified, cover())
    assert case.state is State.REJECTED and case.rejected_stage == "review"


def test_the_final_review_needs_a_second_reviewer():
    first, _ = review(review_cmd("review", reviewer="anna"), case_in(State.INVESTIGATED),
                      cover())
    assert reason_of(review, review_cmd("final", reviewer="anna"), first, cover()) == \
        "SAME_REVIEWER"
    final, events = review(review_cmd("final", reviewer="bo"), first, cover())
    assert final.state is State.FINAL_REVIEWED
    assert events[-1].TYPE == "claims.CaseReadyForPublicity"


@pytest.mark.parametrize("stage", ["review", "final"])
def test_a_rejection_at_review_can_be_appealed(stage):
    rejected = case_in(State.REJECTED, rejected_stage=stage)
    case, events = appeal(AppealClaim(case_id="c-1", reason="new evidence",
                                      appealed_on=date(2023, 4, 10)), rejected)
    assert case.state is State.APPEALED and case.appealed
    (appealed,) = events
    assert (appealed.TYPE, appealed.member_id, appealed.payer_id, appealed.plan) == (
        "claims.ClaimAppealed", "m-1", "p-1", "critical_illness")


def test_a_jury_refusal_cannot_be_appealed_and_other_states_cannot_appeal():
    cmd = AppealClaim(case_id="c-1", reason="again", appealed_on=date(2023, 4, 10))
    assert reason_of(appeal, cmd, case_in(State.REJECTED, rejected_stage="jury")) == \
        "NOT_APPEALABLE"
    assert reason_of(appeal, cmd, case_in(State.REVIEWED)) == "ILLEGAL_TRANSITION"
    assert reason_of(appeal, cmd, None) == "UNKNOWN_CASE"


def test_an_approved_appeal_goes_on_to_public_scrutiny_not_straight_to_payment():
    in_jury = before_jury(case_in(State.APPEALED, appealed=True, rejected_stage="review"))
    assert in_jury is not None and in_jury.state is State.IN_JURY
    case, events = jury_decided(in_jury, True, date(2023, 4, 20), cover())
    assert case.state is State.FINAL_REVIEWED and case.rejected_stage is None
    assert [e.TYPE for e in events] == ["claims.CaseReadyForPublicity"]


def test_an_approved_dispute_is_paid_and_a_refused_one_is_final():
    in_jury = before_jury(disputed(case_in(State.PUBLISHED)))
    assert in_jury is not None
    paid, events = jury_decided(in_jury, True, date(2023, 4, 20), cover())
    assert paid.state is State.APPROVED and events[0].TYPE == "claims.CaseApproved"
    refused, events = jury_decided(in_jury, False, date(2023, 4, 20), cover())
    assert (refused.state, refused.rejected_stage) == (State.REJECTED, "jury")
    assert events[0].reason_code == "JURY_REJECTED"


@pytest.mark.parametrize("state", sorted(set(State) - {State.PUBLISHED, State.DISPUTED,
                                                       State.IN_JURY, State.APPEALED}))
def test_a_verdict_for_a_case_not_before_the_jury_changes_nothing(state):
    assert jury_decided(case_in(state), True, date(2023, 4, 20), cover()) is None


def test_an_illness_suspected_after_its_diagnosis_is_refused():
    cmd = claim(suspected_on=DIAGNOSED_ON + timedelta(days=1))
    assert reason_of(do_file, cmd) == "INVALID_DATE"


# Publicity's and the jury's events come on different topics: claims may read them in
# either order (seen in the end-to-end test before this was handled).

def test_the_jury_opening_before_the_dispute_arrives_still_puts_the_case_before_the_jury():
    in_jury = before_jury(case_in(State.PUBLISHED))
    assert in_jury is not None and in_jury.state is State.IN_JURY
    late = disputed(in_jury)
    assert late is not None and late.state is State.IN_JURY  # recorded, state kept


def test_a_verdict_before_the_dispute_arrives_is_applied_and_the_late_dispute_only_recorded():
    paid, events = jury_decided(case_in(State.PUBLISHED), True, date(2023, 4, 20), cover())
    assert paid.state is State.APPROVED and events[0].TYPE == "claims.CaseApproved"
    late = disputed(paid)
    assert late is not None and late.state is State.APPROVED


def test_a_dispute_never_touches_a_case_that_is_not_published_or_judged():
    for state in (State.FILED, State.REVIEWED, State.FINAL_REVIEWED, State.WITHDRAWN):
        assert disputed(case_in(state)) is None
    assert disputed(case_in(State.IN_JURY, appealed=True)) is None
