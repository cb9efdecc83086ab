"""When a member is on a period's sharing roll (SPEC §3): the roll is fixed on the publicity
day before each sharing day; a member is on it if they joined before that day and had not
left by it."""

from __future__ import annotations

from datetime import date

from mutualaid.rulebook import PlanRules


def _sharing_day_after(publicity_day: int, plan: PlanRules) -> int:
    return min(d for d in plan.sharing_days if d > publicity_day)


def last_sharing_date(joined_on: date, left_on: date, plan: PlanRules) -> date | None:
    """The sharing date of the last roll the member was on, or None if they left before
    their first publicity day. A member who leaves after a publicity day still shares the
    cases of that round, even if they leave before its sharing day."""
    year, month = left_on.year, left_on.month
    for _ in range(2):  # the month of leaving, then the one before
        for day in sorted(plan.publicity_days, reverse=True):
            publicity = date(year, month, day)
            if joined_on < publicity < left_on:
                return date(year, month, _sharing_day_after(day, plan))
            if publicity <= joined_on:
                return None
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return None
