"""Jury rules beyond the basics of test_jury_domain: how a case comes to the jury (origin,
mode, sittings), runs of votes, panel votes, and closing. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.contracts.jury import (
    CastVote, CloseVoting, JuryVerdict, VoteCast, VotingInconclusive)
from mutualaid.errors import Rejected
from mutualaid.rulebook import load_rulebook

from jury.domain.model import Candidate, JuryCase, Standing
from jury.domain.rules import (
    PLAN_TIME, SittingConflict, close, open_case, tally_deltas, vote, votes)

pytestmark = pytest.mark.domain

RULES = load_rulebook()
ON = date(2024, 5, 10)
JURY = RULES.version_on(ON).plan("critical_illness").jury
UTC = timezone.utc
DURING = datetime(2024, 5, 11, 9, 30, tzinfo=UTC)


def opened(origin: str = "dispute", *, mode: str | None = None, **kw) -> JuryCase:
    rules = JURY.model_copy(update={"mode": mode}) if mode else JURY
    result = open_case("c-1", "m-1", "p-1", ON, rules, origin=origin, **kw)
    assert result is not None
    return result[0]


def juror(member_id: str, payer_id: str | None = None) -> Candidate:
    return Candidate(member_id, payer_id or member_id, date(1980, 1, 1), date(2020, 1, 1), True)


def ballot(juror_id: str, approve: bool = True, case_id: str = "c-1",
           cast_at: datetime = DURING) -> CastVote:
    return CastVote(case_id=case_id, juror_id=juror_id, approve=approve, cast_at=cast_at)


def reasons(outcomes) -> list[str]:
    return [o.reason_code if isinstance(o, Rejected) else "ok" for o in outcomes]


def closing(case: JuryCase | None, votes_for: int, votes_against: int,
            at: datetime | None = None):
    when = at or (case.closes_at if case else DURING)
    return close(CloseVoting(case_id="c-1", closed_at=when), case, votes_for, votes_against)


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value.reason_code


# -- opening ---------------------------------------------------------------------------------

def test_a_dispute_sits_in_the_rulebook_mode_and_an_appeal_in_the_appeal_mode():
    assert (JURY.mode, JURY.appeal_mode) == ("open", "panel")
    dispute, appeal = opened("dispute"), opened("appeal")
    assert (dispute.mode, dispute.origin) == ("open", "dispute")
    assert (appeal.mode, appeal.origin) == ("panel", "appeal")
    assert (appeal.panel_size, appeal.quorum_numerator, appeal.quorum_denominator) == (11, 2, 3)
    assert appeal.opens_at == datetime(2024, 5, 10, tzinfo=PLAN_TIME)
    assert appeal.closes_at - appeal.opens_at == timedelta(hours=72)


def test_the_opened_event_names_mode_origin_and_deadline():
    result = open_case("c-1", "m-1", "p-1", ON, JURY, origin="appeal", plan="elderly_cancer")
    assert result is not None
    case, event = result
    assert (event.mode, event.origin, event.voting_closes_at) == ("panel", "appeal",
                                                                  case.closes_at)
    assert case.plan == "elderly_cancer"


def test_a_case_sits_once_per_origin():
    first = opened("dispute")
    assert open_case("c-1", "m-1", "p-1", ON, JURY, sittings=[first]) is None
    assert open_case("c-1", "m-1", "p-1", ON, JURY,
                     sittings=[replace(first, decided=True)]) is None


def test_an_upheld_appeal_may_come_back_disputed_with_draw_rounds_numbered_on():
    appeal = replace(opened("appeal"), decided=True, draw_round=2, seats=11)
    result = open_case("c-1", "m-1", "p-1", ON, JURY.model_copy(update={"mode": "panel"}),
                       origin="dispute", sittings=[appeal])
    assert result is not None and result[0].draw_round == 2 and result[0].origin == "dispute"


def test_a_second_origin_while_the_first_is_undecided_is_a_conflict():
    with pytest.raises(SittingConflict):
        open_case("c-1", "m-1", "p-1", ON, JURY, origin="dispute", sittings=[opened("appeal")])


# -- votes -----------------------------------------------------------------------------------

def test_a_vote_before_the_window_opens_is_voting_not_open():
    case = opened()
    early = ballot("j-1", cast_at=case.opens_at - timedelta(seconds=1))
    assert reason_of(vote, early, case, juror("j-1"), qualified=True, objected=False,
                     already_voted=False) == "VOTING_NOT_OPEN"
    assert vote(ballot("j-1", cast_at=case.opens_at), case, juror("j-1"), qualified=True,
                objected=False, already_voted=False).juror_id == "j-1"


def test_in_panel_mode_only_the_seated_panel_votes():
    case = replace(opened("appeal"), draw_round=1, seats=11)
    kwargs = dict(qualified=True, objected=False, already_voted=False)
    assert reason_of(vote, ballot("j-1"), case, juror("j-1"), **kwargs) == "NOT_ON_PANEL"
    assert vote(ballot("j-1"), case, juror("j-1"), seated=True, **kwargs).juror_id == "j-1"


def test_in_panel_mode_whoever_was_not_drawn_is_not_on_panel_first():
    case = replace(opened("appeal"), draw_round=1, seats=11)
    assert reason_of(vote, ballot("n-1"), case, None, qualified=False, objected=False,
                     already_voted=False) == "NOT_ON_PANEL"
    assert reason_of(vote, ballot("k-1"), case, juror("k-1", "p-1"), qualified=True,
                     objected=False, already_voted=False) == "NOT_ON_PANEL"
    # seated, then disqualified (a fraud record found, membership ended)
    assert reason_of(vote, ballot("j-1"), case, juror("j-1"), qualified=False, objected=False,
                     already_voted=False, seated=True) == "NOT_A_JUROR"


def test_an_excluded_member_is_excluded_even_if_seated():
    case = replace(opened("appeal"), seats=11)
    assert reason_of(vote, ballot("k-1"), case, juror("k-1", "p-1"), qualified=True,
                     objected=False, already_voted=False, seated=True) == "EXCLUDED"


def test_a_run_of_votes_gets_one_outcome_each_in_order():
    cases = {"c-1": opened()}
    jurors = {j: juror(j) for j in ("j-1", "j-2", "j-3", "j-4", "o-1")}
    jurors["k-1"] = juror("k-1", "p-1")
    run = [ballot("j-1"), ballot("j-2", False), ballot("j-1", False),  # repeat in the run
           ballot("j-3"),  # voted in an earlier run
           ballot("n-1"),  # not a juror
           ballot("k-1"), ballot("o-1"),  # excluded
           ballot("j-4", case_id="c-9"),  # no such case
           ballot("j-4")]
    standing = Standing(objected=frozenset({("c-1", "o-1")}), voted=frozenset({("c-1", "j-3")}))
    outcomes = votes(run, cases, jurors, set(jurors) - {"n-1"}, standing)
    assert reasons(outcomes) == ["ok", "ok", "ALREADY_VOTED", "ALREADY_VOTED", "NOT_A_JUROR",
                                 "EXCLUDED", "EXCLUDED", "NO_OPEN_JURY_CASE", "ok"]
    assert [o.juror_id for o in outcomes if isinstance(o, VoteCast)] == ["j-1", "j-2", "j-4"]


def test_a_rejected_vote_does_not_count_as_voted():
    cases = {"c-1": opened()}
    late = ballot("j-1", cast_at=cases["c-1"].closes_at + timedelta(seconds=1))
    outcomes = votes([late, ballot("j-1")], cases, {"j-1": juror("j-1")}, {"j-1"}, Standing())
    assert reasons(outcomes) == ["VOTING_CLOSED", "ok"]


def test_tally_deltas_count_accepted_votes_per_sitting_and_round():
    a, b = opened(), replace(opened("appeal"), case_id="c-2", draw_round=3)
    casts = [VoteCast(case_id=c, juror_id=j, approve=v, cast_at=DURING)
             for c, j, v in [("c-1", "x", True), ("c-2", "y", False), ("c-1", "z", False),
                             ("c-1", "w", True)]]
    deltas = tally_deltas(casts, {"c-1": a, "c-2": b})
    assert [(d.case_id, d.origin, d.draw_round, d.votes_for, d.votes_against)
            for d in deltas] == [("c-1", "dispute", 0, 2, 1), ("c-2", "appeal", 3, 0, 1)]


@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=200))
def test_counters_from_runs_equal_the_accepted_votes(ballots):
    cases = {"c-1": opened()}
    jurors = {f"j-{i}": juror(f"j-{i}") for i in range(31)}
    run = [ballot(f"j-{i}", approve) for i, approve in ballots]
    outcomes = votes(run, cases, jurors, set(jurors), Standing())
    accepted = [o for o in outcomes if isinstance(o, VoteCast)]
    first = {}
    for i, approve in ballots:
        first.setdefault(i, approve)
    assert len(accepted) == len(first)
    total_for = sum(d.votes_for for d in tally_deltas(accepted, cases))
    total_against = sum(d.votes_against for d in tally_deltas(accepted, cases))
    assert (total_for, total_against) == (sum(first.values()),
                                          len(first) - sum(first.values()))


# -- closing ---------------------------------------------------------------------------------

def test_closing_before_the_deadline_is_voting_still_open():
    case = opened()
    assert reason_of(closing, case, 600, 500, case.closes_at - timedelta(seconds=1)) == \
        "VOTING_STILL_OPEN"


def test_closing_an_unknown_case_is_no_open_jury_case():
    assert reason_of(closing, None, 0, 0) == "NO_OPEN_JURY_CASE"


def test_closing_a_decided_case_again_is_already_applied():
    closed = closing(opened(), 600, 500)
    assert isinstance(closed.event, JuryVerdict) and closed.case.decided
    assert reason_of(closing, closed.case, 600, 500) == "ALREADY_APPLIED"


def test_an_inconclusive_open_vote_gets_another_window_and_keeps_its_votes():
    case = opened()
    closed = closing(case, 400, 300)
    event = closed.event
    assert isinstance(event, VotingInconclusive) and not closed.redraw
    assert (event.votes_for, event.votes_against, event.required_votes, event.mode) == \
        (400, 300, 1000, "open")
    assert closed.case.closes_at == case.closes_at + timedelta(hours=72)
    assert event.voting_closes_at == closed.case.closes_at and not closed.case.decided
    # the same close again (a scheduler retry) does nothing; the new deadline decides
    assert reason_of(closing, closed.case, 400, 300, case.closes_at) == "ALREADY_APPLIED"
    assert reason_of(closing, closed.case, 400, 300, case.closes_at + timedelta(hours=1)) == \
        "VOTING_STILL_OPEN"
    verdict = closing(closed.case, 600, 450).event
    assert isinstance(verdict, JuryVerdict) and verdict.approved


def test_a_late_close_still_gives_a_full_new_window():
    case = opened()
    late = case.closes_at + timedelta(hours=5)
    assert closing(case, 1, 0, late).case.closes_at == late + timedelta(hours=72)


def test_a_panel_with_quorum_gives_a_verdict_of_the_votes_cast():
    case = replace(opened("appeal"), draw_round=1, seats=11)
    verdict = closing(case, 5, 3).event  # 8 of 11 >= 2/3
    assert isinstance(verdict, JuryVerdict)
    assert (verdict.approved, verdict.mode, verdict.origin, verdict.draw_round) == \
        (True, "panel", "appeal", 1)
    assert isinstance(closing(case, 4, 4).event, JuryVerdict)
    assert not closing(case, 4, 4).event.approved  # a tie is not a majority


def test_a_panel_without_quorum_is_inconclusive_and_redrawn():
    case = replace(opened("appeal"), draw_round=1, seats=11)
    closed = closing(case, 4, 3)  # 7 of 11 < 2/3
    assert isinstance(closed.event, VotingInconclusive) and closed.redraw
    assert (closed.event.required_votes, closed.event.mode, closed.event.draw_round) == \
        (8, "panel", 1)


def test_a_panel_never_drawn_waits():
    closed = closing(opened("appeal"), 0, 0)
    assert isinstance(closed.event, VotingInconclusive) and closed.redraw
    assert closed.event.required_votes == 8  # the quorum of the intended 11


@given(votes_for=st.integers(0, 11), votes_against=st.integers(0, 11),
       seats=st.sampled_from([1, 3, 5, 7, 9, 11]))
def test_panel_close_property(votes_for, votes_against, seats):
    case = replace(opened("appeal"), draw_round=1, seats=seats)
    event = closing(case, votes_for, votes_against).event
    cast = votes_for + votes_against
    if cast * 3 >= 2 * seats:
        assert isinstance(event, JuryVerdict)
        assert event.approved == (votes_for * 2 > cast)
    else:
        assert isinstance(event, VotingInconclusive)
