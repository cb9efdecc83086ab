"""Membership state as the domain sees it (not the DB row, not the wire contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Status(StrEnum):
    ACTIVE = "active"
    LEFT = "left"
    LAPSED = "lapsed"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    payer_id: str
    plan: str
    relation: str
    birth_date: date | None  # None once the member's personal data is erased
    joined_on: date
    waiting_period_ends_on: date
    status: Status
    end_reason: str | None = None
    erased: bool = False

    @property
    def is_payer(self) -> bool:
        return self.relation == "self"


@dataclass
class Known:
    """What the store already holds about a batch of joins, updated as the batch admits
    members so that later joins in the same batch see earlier ones."""

    taken_member_ids: set[str] = field(default_factory=set)
    active_id_hashes: set[str] = field(default_factory=set)
    payers: dict[str, Member] = field(default_factory=dict)
