"""A case and the member facts claims needs, as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum


class State(StrEnum):
    FILED = "filed"
    INVESTIGATED = "investigated"
    REVIEWED = "reviewed"
    FINAL_REVIEWED = "final_reviewed"
    PUBLISHED = "published"
    DISPUTED = "disputed"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


TERMINAL = frozenset({State.APPROVED, State.REJECTED, State.WITHDRAWN})


@dataclass(frozen=True, slots=True)
class Coverage:
    """What membership told claims about a member (from its events)."""

    member_id: str
    payer_id: str
    plan: str
    masked_name: str
    masked_national_id: str
    birth_date: date
    joined_on: date
    waiting_period_ends_on: date
    active: bool


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    member_id: str
    payer_id: str
    plan: str
    illness_code: str
    diagnosed_on: date
    hospital: str
    age_at_diagnosis: int
    benefit_fen: int
    rule_version: str
    state: State
    investigation_summary: str = ""

    def moved(self, state: State, **changes: object) -> Case:
        return replace(self, state=state, **changes)
