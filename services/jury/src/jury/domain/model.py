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
    case_id: str
    claimant_id: str
    claimant_payer_id: str
    mode: str
    min_votes: int
    approval_majority_pct: int
    closes_at: datetime
    decided: bool
