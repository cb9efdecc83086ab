"""The member jury (SPEC §6): who qualifies, who may vote on a case, and what the tally
decides. Pure functions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from mutualaid.contracts.base import Event
from mutualaid.contracts.jury import (
    CastVote, JurorQualified, JuryCaseOpened, JuryVerdict, QualifyJuror, VoteCast,
    VotingInconclusive)
from mutualaid.errors import Rejected
from mutualaid.identity import age_on
from mutualaid.rulebook import JuryRules

from .model import Candidate, JuryCase

PASS_MARK = 80
MIN_MEMBERSHIP_DAYS = 30
MIN_AGE = 18
#: Calendar days of the plan are China Standard Time (no daylight saving), whatever the host.
PLAN_TIME = timezone(timedelta(hours=8), "CST")


def qualify(cmd: QualifyJuror, member: Candidate | None, *, has_fraud_record: bool
            ) -> JurorQualified:
    if member is None or not member.active:
        raise Rejected("NOT_AN_ACTIVE_MEMBER", "jurors are active members")
    if cmd.exam_score < PASS_MARK:
        raise Rejected("EXAM_FAILED", f"score {cmd.exam_score} is below {PASS_MARK}")
    if (cmd.qualified_on - member.joined_on).days < MIN_MEMBERSHIP_DAYS:
        raise Rejected("MEMBERSHIP_TOO_SHORT", f"a juror has been a member {MIN_MEMBERSHIP_DAYS}"
                       " days or more")
    if age_on(member.birth_date, cmd.qualified_on) < MIN_AGE:
        raise Rejected("TOO_YOUNG", f"a juror is {MIN_AGE} or older")
    if has_fraud_record:
        raise Rejected("FRAUD_RECORD", "members with a fraud record cannot sit on a jury")
    return JurorQualified(member_id=cmd.member_id, exam_score=cmd.exam_score,
                          qualified_on=cmd.qualified_on)


def open_case(case_id: str, claimant_id: str, claimant_payer_id: str, disputed_on: date,
              rules: JuryRules) -> tuple[JuryCase, JuryCaseOpened]:
    if rules.mode != "open":
        # Panel draws arrive with the jury issue; refusing loudly beats a silent wrong mode.
        raise NotImplementedError("panel mode is not available yet")
    opens = datetime.combine(disputed_on, time(0), tzinfo=PLAN_TIME)
    closes = opens + timedelta(hours=rules.vote_window_hours)
    case = JuryCase(case_id, claimant_id, claimant_payer_id, rules.mode, rules.min_votes,
                    rules.approval_majority_pct, closes, decided=False)
    return case, JuryCaseOpened(case_id=case_id, mode="open", origin="dispute",
                                voting_closes_at=closes)


def vote(cmd: CastVote, case: JuryCase | None, juror: Candidate | None, *, qualified: bool,
         objected: bool, already_voted: bool) -> VoteCast:
    if case is None or case.decided:
        raise Rejected("NO_OPEN_JURY_CASE", f"case {cmd.case_id} is not before the jury")
    if cmd.cast_at > case.closes_at:
        raise Rejected("VOTING_CLOSED", f"voting closed at {case.closes_at.isoformat()}")
    if not qualified or juror is None or not juror.active:
        raise Rejected("NOT_A_JUROR", "only qualified, active jurors vote")
    if cmd.juror_id == case.claimant_id or juror.payer_id == case.claimant_payer_id or objected:
        raise Rejected("EXCLUDED", "the claimant, their payer's members and objectors "
                       "cannot vote on this case")
    if already_voted:
        raise Rejected("ALREADY_VOTED", "one vote per juror per case")
    return VoteCast(case_id=cmd.case_id, juror_id=cmd.juror_id, approve=cmd.approve,
                    cast_at=cmd.cast_at)


def tally(case: JuryCase | None, case_id: str, votes_for: int, votes_against: int,
          closed_at: datetime) -> Event:
    if case is None or case.decided:
        raise Rejected("NO_OPEN_JURY_CASE", f"case {case_id} is not before the jury")
    cast = votes_for + votes_against
    if cast < case.min_votes:
        return VotingInconclusive(case_id=case_id, votes_for=votes_for,
                                  votes_against=votes_against, required_votes=case.min_votes,
                                  closed_at=closed_at)
    return JuryVerdict(case_id=case_id,
                       approved=votes_for * 100 > cast * case.approval_majority_pct,
                       votes_for=votes_for, votes_against=votes_against, mode="open",
                       decided_at=closed_at)
