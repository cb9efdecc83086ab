"""A case and the member facts claims needs, as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum


class State(StrEnum):
    FILED = "filed"
    UNDER_INVESTIGATION = "under_investigation"
    INVESTIGATED = "investigated"
    REVIEWED = "reviewed"
    FINAL_REVIEWED = "final_reviewed"
    PUBLISHED = "published"
    DISPUTED = "disputed"
    IN_JURY = "in_jury"
    APPEALED = "appealed"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


TERMINAL = frozenset({State.APPROVED, State.REJECTED, State.WITHDRAWN})
#: The jury decides from here on; the claimant can no longer withdraw the case.
BEFORE_THE_JURY = frozenset({State.FILED, State.UNDER_INVESTIGATION, State.INVESTIGATED,
                             State.REVIEWED, State.FINAL_REVIEWED, State.PUBLISHED})


@dataclass(frozen=True, slots=True)
class Coverage:
    """What membership told claims about a member (from its events)."""

    member_id: str
    payer_id: str
    plan: str
    masked_name: str
    masked_national_id: str
    birth_date: date | None  # None once the member's personal data is erased
    joined_on: date
    waiting_period_ends_on: date
    #: The day coverage stopped (left, lapsed or ended); None while covered.
    covered_until: date | None = None

    def covers(self, day: date) -> bool:
        return self.joined_on <= day and (self.covered_until is None or day < self.covered_until)


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
    verified: bool | None = None
    first_reviewer: str | None = None
    #: Where a rejection happened: "review" or "final" can be appealed; "jury" is final.
    rejected_stage: str | None = None
    appealed: bool = False

    def moved(self, state: State, **changes: object) -> Case:
        return replace(self, state=state, **changes)
