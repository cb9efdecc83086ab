"""Rounds, published cases and objections as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Round:
    round_date: date
    objection_deadline: date
    closed: bool


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
