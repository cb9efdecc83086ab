"""Jurors, jury cases and who may not sit on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member as jury knows them from membership events."""

    member_id: str
    payer_id: str
    birth_date: date
    joined_on: date
    active: bool


@dataclass(frozen=True, slots=True)
class JuryCase:
    """One sitting of the jury on a case. A case sits at most once per origin: an appeal
    the panel upholds goes on to publicity and may come back disputed, as a second sitting
    with its own votes.

    The rule values are copied from the rulebook when the sitting opens, so a sitting is
    judged to the end by the rules in force on the day it reached the jury."""

    case_id: str
    origin: str  # "dispute" | "appeal"
    plan: str
    claimant_id: str
    claimant_payer_id: str
    mode: str  # "open" | "panel"
    min_votes: int
    approval_majority_pct: int
    panel_size: int
    quorum_numerator: int
    quorum_denominator: int
    vote_window_hours: int
    opens_at: datetime
    closes_at: datetime
    decided: bool = False
    #: Panel mode: rounds drawn so far on this case (numbering runs across its sittings, so
    #: each round has its own seed); 0 in open mode.
    draw_round: int = 0
    #: Panel mode: jurors on the current panel (voters kept plus those drawn last).
    seats: int = 0
    #: When the last window closed without a verdict; a retried close of it is a no-op.
    last_closed_at: datetime | None = None

    def quorum_met(self, votes_cast: int) -> bool:
        return self.seats > 0 and (votes_cast * self.quorum_denominator
                                   >= self.quorum_numerator * self.seats)

    def quorum_votes(self) -> int:
        """The fewest votes that reach the quorum of the current (or, before any draw, the
        intended) panel."""
        seats = self.seats or self.panel_size
        return -(-self.quorum_numerator * seats // self.quorum_denominator)

    def approves(self, votes_for: int, votes_cast: int) -> bool:
        return votes_cast > 0 and votes_for * 100 > votes_cast * self.approval_majority_pct


@dataclass(frozen=True, slots=True)
class Standing:
    """What the store knows about (case, juror) pairs of a run of votes: objectors of the
    case, jurors who already voted in its current sitting, jurors seated on its panel."""

    objected: frozenset[tuple[str, str]] = frozenset()
    voted: frozenset[tuple[str, str]] = frozenset()
    seated: frozenset[tuple[str, str]] = frozenset()
