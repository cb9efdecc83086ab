"""Jury domain rules (SPEC §6): qualification, opening a case, voting, tally. Pure."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mutualaid.contracts.jury import (
    CastVote, CloseVoting, JurorQualified, JuryCaseOpened, JuryVerdict, QualifyJuror, VoteCast,
    VotingInconclusive)
from mutualaid.errors import Rejected
from mutualaid.rulebook import load_rulebook

from jury.domain.model import Candidate, JuryCase
from jury.domain.rules import (
    MIN_AGE, MIN_MEMBERSHIP_DAYS, PASS_MARK, close, open_case, qualify, vote)

pytestmark = pytest.mark.domain

RULES = load_rulebook()
DISPUTED_ON = date(2024, 5, 10)
JURY = RULES.version_on(DISPUTED_ON).plan("critical_illness").jury
UTC = timezone.utc
CLOSES_AT = datetime(2024, 5, 13, 0, 0, tzinfo=UTC)
QUALIFIED_ON = date(2024, 4, 1)


def candidate(member_id: str = "j-1", payer_id: str = "j-1", *, birth: date = date(1990, 1, 1),
              joined_on: date = date(2023, 1, 1), active: bool = True) -> Candidate:
    return Candidate(member_id, payer_id, birth, joined_on, active)


def jury_case(*, decided: bool = False, min_votes: int = JURY.min_votes) -> JuryCase:
    return JuryCase("c-1", origin="dispute", plan="critical_illness", claimant_id="m-1",
                    claimant_payer_id="p-1", mode="open", min_votes=min_votes,
                    approval_majority_pct=JURY.approval_majority_pct,
                    panel_size=JURY.panel_size, quorum_numerator=JURY.quorum_numerator,
                    quorum_denominator=JURY.quorum_denominator,
                    vote_window_hours=JURY.vote_window_hours,
                    opens_at=CLOSES_AT - timedelta(hours=72), closes_at=CLOSES_AT,
                    decided=decided)


def tally(case: JuryCase | None, case_id: str, votes_for: int, votes_against: int,
          closed_at: datetime):
    """The event of closing the vote at ``closed_at``."""
    return close(CloseVoting(case_id=case_id, closed_at=closed_at), case, votes_for,
                 votes_against).event


def qualify_cmd(score: int = 90, on: date = QUALIFIED_ON, member_id: str = "j-1"
                ) -> QualifyJuror:
    return QualifyJuror(member_id=member_id, exam_score=score, qualified_on=on)


def ballot(juror_id: str = "j-1", *, approve: bool = True,
           cast_at: datetime = datetime(2024, 5, 11, 9, 30, tzinfo=UTC)) -> CastVote:
    return CastVote(case_id="c-1", juror_id=juror_id, approve=approve, cast_at=cast_at)


def do_vote(cmd: CastVote | None = None, case: JuryCase | None = None,
            juror: Candidate | None = None, *, qualified: bool = True, objected: bool = False,
            already_voted: bool = False) -> VoteCast:
    return vote(cmd or ballot(), case or jury_case(), juror or candidate(),
                qualified=qualified, objected=objected, already_voted=already_voted)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


def test_rulebook_jury_parameters_are_the_spec_values():
    assert (JURY.mode, JURY.min_votes, JURY.approval_majority_pct, JURY.vote_window_hours) == \
        ("open", 1000, 50, 72)
    assert (PASS_MARK, MIN_MEMBERSHIP_DAYS, MIN_AGE) == (80, 30, 18)


# -- qualify -------------------------------------------------------------------------------

def test_qualify_emits_juror_qualified():
    event = qualify(qualify_cmd(score=PASS_MARK), candidate(), has_fraud_record=False)
    assert isinstance(event, JurorQualified)
    assert (event.member_id, event.exam_score, event.qualified_on) == \
        ("j-1", 80, QUALIFIED_ON)


def test_qualify_at_exactly_30_days_and_18_years_is_accepted():
    on = date(2024, 6, 1)
    who = candidate(birth=date(2006, 6, 1), joined_on=on - timedelta(days=30))
    assert qualify(qualify_cmd(on=on), who, has_fraud_record=False).qualified_on == on


@pytest.mark.parametrize("who", [None, candidate(active=False)], ids=["unknown", "inactive"])
def test_qualify_non_member_is_not_an_active_member(who):
    assert reason_of(qualify, qualify_cmd(), who, has_fraud_record=False) == \
        "NOT_AN_ACTIVE_MEMBER"


def test_qualify_with_score_below_80_is_exam_failed():
    assert reason_of(qualify, qualify_cmd(score=79), candidate(), has_fraud_record=False) == \
        "EXAM_FAILED"


def test_qualify_after_29_days_is_membership_too_short():
    who = candidate(joined_on=QUALIFIED_ON - timedelta(days=29))
    assert reason_of(qualify, qualify_cmd(), who, has_fraud_record=False) == \
        "MEMBERSHIP_TOO_SHORT"


def test_qualify_the_day_before_18th_birthday_is_too_young():
    on = date(2024, 6, 1)
    who = candidate(birth=date(2006, 6, 2), joined_on=date(2020, 1, 1))
    assert reason_of(qualify, qualify_cmd(on=on), who, has_fraud_record=False) == "TOO_YOUNG"


def test_qualify_with_fraud_record_is_fraud_record():
    assert reason_of(qualify, qualify_cmd(), candidate(), has_fraud_record=True) == \
        "FRAUD_RECORD"


# -- open_case -----------------------------------------------------------------------------

def test_open_case_opens_an_open_mode_vote_for_72_hours():
    case, opened = open_case("c-1", "m-1", "p-1", DISPUTED_ON, JURY)
    assert isinstance(opened, JuryCaseOpened)
    assert (opened.case_id, opened.mode, opened.origin) == ("c-1", "open", "dispute")
    assert opened.voting_closes_at == case.closes_at
    assert case.closes_at.tzinfo is not None
    opens = datetime.combine(DISPUTED_ON, time(), tzinfo=case.closes_at.tzinfo)
    assert case.closes_at - opens == timedelta(hours=72)
    assert (case.case_id, case.claimant_id, case.claimant_payer_id, case.mode) == \
        ("c-1", "m-1", "p-1", "open")
    assert (case.min_votes, case.approval_majority_pct, case.decided) == (1000, 50, False)


def test_open_case_in_panel_mode_opens_a_panel_sitting():
    # Panel mode (SPEC §6) opens the sitting; the draw itself is jury.domain.panel's.
    case, opened = open_case("c-1", "m-1", "p-1", DISPUTED_ON,
                             JURY.model_copy(update={"mode": "panel"}))
    assert (opened.mode, case.mode, case.panel_size, case.seats) == ("panel", "panel", 11, 0)


# -- vote ----------------------------------------------------------------------------------

def test_vote_emits_vote_cast():
    event = do_vote(ballot(approve=False))
    assert isinstance(event, VoteCast)
    assert (event.case_id, event.juror_id, event.approve, event.cast_at) == \
        ("c-1", "j-1", False, datetime(2024, 5, 11, 9, 30, tzinfo=UTC))


def test_vote_at_the_closing_instant_is_accepted():
    assert do_vote(ballot(cast_at=CLOSES_AT)).cast_at == CLOSES_AT


@pytest.mark.parametrize("case", [None, jury_case(decided=True)], ids=["unknown", "decided"])
def test_vote_on_a_case_not_before_the_jury_is_no_open_jury_case(case):
    assert reason_of(vote, ballot(), case, candidate(), qualified=True, objected=False,
                     already_voted=False) == "NO_OPEN_JURY_CASE"


def test_vote_after_the_window_is_voting_closed():
    late = ballot(cast_at=CLOSES_AT + timedelta(seconds=1))
    assert reason_of(do_vote, late) == "VOTING_CLOSED"


def test_vote_by_unqualified_member_is_not_a_juror():
    assert reason_of(do_vote, qualified=False) == "NOT_A_JUROR"


def test_vote_by_unknown_juror_is_not_a_juror():
    assert reason_of(vote, ballot(), jury_case(), None, qualified=True, objected=False,
                     already_voted=False) == "NOT_A_JUROR"


def test_vote_by_inactive_juror_is_not_a_juror():
    assert reason_of(do_vote, juror=candidate(active=False)) == "NOT_A_JUROR"


@pytest.mark.parametrize("juror_id, payer_id, objected", [
    ("m-1", "p-1", False),   # the claimant
    ("p-1", "p-1", False),   # the claimant's payer
    ("m-2", "p-1", False),   # another member paid for by the claimant's payer
    ("j-1", "j-1", True),    # an objector of this case
], ids=["claimant", "payer", "same-payer", "objector"])
def test_vote_by_an_excluded_member_is_excluded(juror_id, payer_id, objected):
    assert reason_of(do_vote, ballot(juror_id), juror=candidate(juror_id, payer_id),
                     objected=objected) == "EXCLUDED"


def test_second_vote_is_already_voted():
    assert reason_of(do_vote, already_voted=True) == "ALREADY_VOTED"


# A CastVote whose cast_at has no UTC offset ("2024-05-11T09:30:00") passes the contract,
# but vote() compares it with the offset-aware closes_at and raises TypeError instead of
# returning VoteCast or raising Rejected.
def test_a_vote_without_a_utc_offset_is_refused_by_the_contract():
    with pytest.raises(ValidationError):
        CastVote.model_validate({"case_id": "c-1", "juror_id": "j-1", "approve": True,
                                 "cast_at": "2024-05-11T09:30:00"})


def test_the_voting_window_is_in_plan_time_whatever_the_host_zone():
    _, opened = open_case("c-9", "m", "p", date(2024, 5, 10), JURY)
    assert opened.voting_closes_at.utcoffset() == timedelta(hours=8)
    assert opened.voting_closes_at.isoformat() == "2024-05-13T00:00:00+08:00"


# -- tally ---------------------------------------------------------------------------------

def test_tally_unknown_case_is_no_open_jury_case():
    assert reason_of(tally, None, "c-1", 600, 500, CLOSES_AT) == "NO_OPEN_JURY_CASE"


def test_tally_decided_case_is_already_applied():
    # Closing is a calendar step: closing a decided case again is harmless, and says so.
    assert reason_of(tally, jury_case(decided=True), "c-1", 600, 500, CLOSES_AT) == \
        "ALREADY_APPLIED"


def test_tally_below_min_votes_is_inconclusive():
    event = tally(jury_case(), "c-1", 999, 0, CLOSES_AT)
    assert isinstance(event, VotingInconclusive)
    assert (event.case_id, event.votes_for, event.votes_against, event.required_votes,
            event.closed_at) == ("c-1", 999, 0, 1000, CLOSES_AT)


@pytest.mark.parametrize("votes_for, votes_against, approved", [
    (501, 499, True),     # 50.1 %
    (500, 500, False),    # exactly 50 %: not a majority
    (499, 501, False),
    (1000, 0, True),
    (0, 1000, False),
])
def test_tally_verdict_needs_strictly_more_than_half(votes_for, votes_against, approved):
    event = tally(jury_case(), "c-1", votes_for, votes_against, CLOSES_AT)
    assert isinstance(event, JuryVerdict)
    assert (event.case_id, event.approved, event.votes_for, event.votes_against, event.mode,
            event.decided_at) == ("c-1", approved, votes_for, votes_against, "open", CLOSES_AT)


@given(votes_for=st.integers(0, 300_000), votes_against=st.integers(0, 300_000))
def test_tally_property(votes_for, votes_against):
    event = tally(jury_case(), "c-1", votes_for, votes_against, CLOSES_AT)
    cast = votes_for + votes_against
    if cast >= JURY.min_votes:
        assert isinstance(event, JuryVerdict)
        assert event.approved == (votes_for * 100 > cast * 50)
        assert event.approved == JURY.approves(votes_for, cast)
    else:
        assert isinstance(event, VotingInconclusive)
        assert event.required_votes == JURY.min_votes
    assert (event.votes_for, event.votes_against) == (votes_for, votes_against)
