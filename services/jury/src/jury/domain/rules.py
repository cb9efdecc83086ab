"""The member jury (SPEC §6): who qualifies, how a case comes before the jury, who may vote
on it, and what closing the vote decides. Pure functions; panel draws are in ``panel``.

Reason codes: qualification ``NOT_AN_ACTIVE_MEMBER``, ``EXAM_FAILED``,
``MEMBERSHIP_TOO_SHORT``, ``TOO_YOUNG``, ``FRAUD_RECORD``; votes ``NO_OPEN_JURY_CASE``,
``VOTING_NOT_OPEN``, ``VOTING_CLOSED``, ``NOT_ON_PANEL`` (panel mode), ``NOT_A_JUROR``,
``EXCLUDED``, ``ALREADY_VOTED`` (checked in that order); closing ``NO_OPEN_JURY_CASE``, ``ALREADY_APPLIED``, ``VOTING_STILL_OPEN``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

from mutualaid.contracts.jury import (
    CastVote, CloseVoting, JurorQualified, JuryCaseOpened, JuryVerdict, QualifyJuror, VoteCast,
    VotingInconclusive)
from mutualaid.contracts.rejection import ReasonCode
from mutualaid.errors import Rejected
from mutualaid.identity import age_on
from mutualaid.rulebook import JuryRules

from .model import Candidate, JuryCase, Standing

PASS_MARK = 80
MIN_MEMBERSHIP_DAYS = 30
MIN_AGE = 18
#: Calendar days of the plan are China Standard Time (no daylight saving), whatever the host.
PLAN_TIME = timezone(timedelta(hours=8), "CST")


class SittingConflict(ValueError):
    """A case came to the jury while another sitting of it is undecided. Not a rule a caller
    broke (the event comes from claims or publicity), so no ``Rejected``: the event goes to
    the DLQ for an operator."""


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


# -- a case comes to the jury ----------------------------------------------------------------

def open_case(case_id: str, claimant_id: str, claimant_payer_id: str, on: date,
              rules: JuryRules, *, origin: str = "dispute", plan: str = "critical_illness",
              sittings: Sequence[JuryCase] = ()) -> tuple[JuryCase, JuryCaseOpened] | None:
    """A disputed case is judged in the rulebook's ``mode``, an appeal in its ``appeal_mode``
    (the rules of the case's plan on the day it comes to the jury). Voting opens at the
    start of that day in plan time and lasts ``vote_window_hours``.

    ``sittings``: the case's earlier sittings. ``None`` when it already sat for this origin
    (a redelivered event): nothing happens twice."""
    if any(s.origin == origin for s in sittings):
        return None
    if any(not s.decided for s in sittings):
        raise SittingConflict(f"case {case_id} came to the jury ({origin}) while its "
                              f"{sittings[0].origin} sitting is undecided")
    mode = rules.mode if origin == "dispute" else rules.appeal_mode
    opens = datetime.combine(on, time(0), tzinfo=PLAN_TIME)
    closes = opens + timedelta(hours=rules.vote_window_hours)
    case = JuryCase(
        case_id=case_id, origin=origin, plan=plan, claimant_id=claimant_id,
        claimant_payer_id=claimant_payer_id, mode=mode, min_votes=rules.min_votes,
        approval_majority_pct=rules.approval_majority_pct, panel_size=rules.panel_size,
        quorum_numerator=rules.quorum_numerator, quorum_denominator=rules.quorum_denominator,
        vote_window_hours=rules.vote_window_hours, opens_at=opens, closes_at=closes,
        # Draw rounds are numbered per case, so a second sitting's panels get new seeds.
        draw_round=max((s.draw_round for s in sittings), default=0) if mode == "panel" else 0)
    return case, JuryCaseOpened(case_id=case_id, mode=mode,  # type: ignore[arg-type]
                                origin=origin,  # type: ignore[arg-type]
                                voting_closes_at=closes)


# -- votes -----------------------------------------------------------------------------------

def vote(cmd: CastVote, case: JuryCase | None, juror: Candidate | None, *, qualified: bool,
         objected: bool, already_voted: bool, seated: bool = False) -> VoteCast:
    if case is None or case.decided:
        raise Rejected("NO_OPEN_JURY_CASE", f"case {cmd.case_id} is not before the jury")
    if cmd.cast_at < case.opens_at:
        raise Rejected("VOTING_NOT_OPEN", f"voting opens at {case.opens_at.isoformat()}")
    if cmd.cast_at > case.closes_at:
        raise Rejected("VOTING_CLOSED", f"voting closed at {case.closes_at.isoformat()}")
    # In panel mode the seat is the first question: whoever was not drawn (an excluded
    # member never is) hears that, whatever else is true of them.
    if case.mode == "panel" and not seated:
        raise Rejected("NOT_ON_PANEL", "in panel mode only the drawn panel votes")
    if not qualified or juror is None or not juror.active:
        raise Rejected("NOT_A_JUROR", "only qualified, active jurors vote")
    if (cmd.juror_id in (case.claimant_id, case.claimant_payer_id)
            or juror.payer_id == case.claimant_payer_id or objected):
        raise Rejected("EXCLUDED", "the claimant, their payer's members and objectors "
                       "cannot vote on this case")
    if already_voted:
        raise Rejected("ALREADY_VOTED", "one vote per juror per case")
    return VoteCast(case_id=cmd.case_id, juror_id=cmd.juror_id, approve=cmd.approve,
                    cast_at=cmd.cast_at)


def votes(cmds: Sequence[CastVote], cases: Mapping[str, JuryCase],
          jurors: Mapping[str, Candidate], qualified: frozenset[str] | set[str],
          standing: Standing) -> list[VoteCast | Rejected]:
    """A run of votes, in order: the second vote of a juror on a case within the run is
    ``ALREADY_VOTED`` like one already stored."""
    voted = set(standing.voted)
    out: list[VoteCast | Rejected] = []
    for cmd in cmds:
        key = (cmd.case_id, cmd.juror_id)
        try:
            cast = vote(cmd, cases.get(cmd.case_id), jurors.get(cmd.juror_id),
                        qualified=cmd.juror_id in qualified, objected=key in standing.objected,
                        already_voted=key in voted, seated=key in standing.seated)
        except Rejected as r:
            out.append(r)
            continue
        voted.add(key)
        out.append(cast)
    return out


@dataclass(frozen=True, slots=True)
class TallyDelta:
    case_id: str
    origin: str
    draw_round: int
    votes_for: int
    votes_against: int


def tally_deltas(casts: Sequence[VoteCast], cases: Mapping[str, JuryCase]) -> list[TallyDelta]:
    """What a run of accepted votes adds to the running counters, per sitting and round."""
    counts: dict[tuple[str, str, int], list[int]] = {}
    for v in casts:
        case = cases[v.case_id]
        row = counts.setdefault((case.case_id, case.origin, case.draw_round), [0, 0])
        row[0 if v.approve else 1] += 1
    return [TallyDelta(c, o, r, f, a) for (c, o, r), (f, a) in sorted(counts.items())]


# -- closing the vote ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Closed:
    case: JuryCase  # decided, or with its next window
    event: JuryVerdict | VotingInconclusive

    @property
    def redraw(self) -> bool:
        """A panel without quorum: the handler replaces its non-voters (``panel.draw``)."""
        return isinstance(self.event, VotingInconclusive) and self.case.mode == "panel"


def close(cmd: CloseVoting, case: JuryCase | None, votes_for: int, votes_against: int
          ) -> Closed:
    """At the deadline: a verdict when enough votes were cast (``min_votes`` in open mode,
    the quorum of the seated panel in panel mode), decided by the majority of votes cast;
    otherwise no verdict and a new window of ``vote_window_hours`` from the deadline (from
    the close when that came late), in which the votes cast so far stand and, in open mode,
    any juror who has not voted may still vote."""
    if case is None:
        raise Rejected("NO_OPEN_JURY_CASE", f"case {cmd.case_id} is not before the jury")
    if case.decided:
        raise Rejected(ReasonCode.ALREADY_APPLIED, f"case {cmd.case_id} is decided")
    if case.last_closed_at is not None and cmd.closed_at <= case.last_closed_at:
        raise Rejected(ReasonCode.ALREADY_APPLIED,
                       f"that window closed at {case.last_closed_at.isoformat()}")
    if cmd.closed_at < case.closes_at:
        raise Rejected("VOTING_STILL_OPEN", f"voting closes at {case.closes_at.isoformat()}")
    cast = votes_for + votes_against
    enough = case.quorum_met(cast) if case.mode == "panel" else cast >= case.min_votes
    if enough:
        return Closed(replace(case, decided=True), JuryVerdict(
            case_id=case.case_id, approved=case.approves(votes_for, cast),
            votes_for=votes_for, votes_against=votes_against,
            mode=case.mode, origin=case.origin,  # type: ignore[arg-type]
            draw_round=case.draw_round, decided_at=cmd.closed_at))
    closes = max(case.closes_at, cmd.closed_at) + timedelta(hours=case.vote_window_hours)
    return Closed(replace(case, closes_at=closes, last_closed_at=cmd.closed_at),
                  VotingInconclusive(
                      case_id=case.case_id, votes_for=votes_for, votes_against=votes_against,
                      required_votes=(case.quorum_votes() if case.mode == "panel"
                                      else case.min_votes),
                      closed_at=cmd.closed_at, mode=case.mode,  # type: ignore[arg-type]
                      origin=case.origin,  # type: ignore[arg-type]
                      draw_round=case.draw_round, voting_closes_at=closes))
