"""Rounds, published cases and objections as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Round:
    round_date: date
    #: The last day an objection is accepted (inclusive).
    objection_deadline: date
    closed: bool
    #: The date the outcomes carry; set when the round is closed.
    closed_on: date | None = None


@dataclass(frozen=True, slots=True)
class PublishedCase:
    case_id: str
    claimant_id: str
    claimant_payer_id: str
    round_date: date | None


@dataclass(frozen=True, slots=True)
class Objector:
    member_id: str
    payer_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class PublicityTerms:
    """What the rule version in force on a date says about publicity."""

    #: Days of the month on which a round opens.
    days: frozenset[int]
    objection_window_days: int

    def is_publicity_day(self, day: date) -> bool:
        return day.day in self.days
