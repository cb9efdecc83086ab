"""Arrears (SPEC §7): a payer whose debits fail in ``arrears_limit_periods`` consecutive
sharing periods is reported, so membership lapses the members they pay for. Arrears settled
later stop counting; a debit paid in a later period breaks the streak."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class DebitStatus(StrEnum):
    SENT = "sent"  # no result yet
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Debit:
    period_id: str
    sharing_date: date
    status: DebitStatus
    settled: bool = False


def failed_streak(debits: Sequence[Debit]) -> list[str]:
    """The periods of the payer's current run of unpaid sharing dates, newest first.

    A sharing date counts as failed when one of its debits failed and is not settled, as
    paid when all its debits with a result were paid; a date still waiting for results
    neither extends nor breaks the run.
    """
    by_date: dict[date, list[Debit]] = {}
    for d in debits:
        by_date.setdefault(d.sharing_date, []).append(d)
    streak: list[str] = []
    for day in sorted(by_date, reverse=True):
        group = by_date[day]
        failed = [d for d in group if d.status is DebitStatus.FAILED and not d.settled]
        if failed:
            streak += sorted(d.period_id for d in failed)
            continue
        if any(d.status is DebitStatus.PAID or d.settled for d in group):
            break
    return streak


def limit_just_reached(streak_dates: int, limit: int) -> bool:
    """Report once per run: when the run reaches the limit, not at every later failure."""
    return streak_dates == limit


def dates_in(debits: Sequence[Debit], period_ids: Sequence[str]) -> int:
    wanted = set(period_ids)
    return len({d.sharing_date for d in debits if d.period_id in wanted})
