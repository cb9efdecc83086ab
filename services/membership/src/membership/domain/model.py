"""Membership state as the domain sees it (not the DB row, not the wire contract)."""

from __future__ import annotations

from dataclasses import dataclass
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
    birth_date: date
    joined_on: date
    waiting_period_ends_on: date
    status: Status

    @property
    def is_payer(self) -> bool:
        return self.relation == "self"
