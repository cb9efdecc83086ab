"""Plan size: member counts per plan and status, and the dissolution alert (SPEC §2): when a
plan that had reached its threshold falls below it, it carries on for one more year and
operators are alerted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from mutualaid.contracts.membership import PlanBelowDissolutionThreshold

#: (plan, status) -> change in members
Deltas = Counter[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PlanSize:
    plan: str
    active: int
    reached_threshold: bool


def moved(deltas: Deltas, plan: str, before: str | None, after: str | None,
          to_plan: str | None = None) -> None:
    """Record one member moving from (plan, before) to (to_plan or plan, after)."""
    if before is not None:
        deltas[(plan, before)] -= 1
    if after is not None:
        deltas[(to_plan or plan, after)] += 1


def alerts(sizes: Iterable[PlanSize], thresholds: Mapping[str, int], on: date
           ) -> tuple[list[PlanBelowDissolutionThreshold], dict[str, bool]]:
    """Alerts for plans that fell below their threshold, and the new ``reached`` flags."""
    events: list[PlanBelowDissolutionThreshold] = []
    reached: dict[str, bool] = {}
    for size in sizes:
        threshold = thresholds[size.plan]
        if size.active >= threshold and not size.reached_threshold:
            reached[size.plan] = True
        elif size.active < threshold and size.reached_threshold:
            reached[size.plan] = False
            events.append(PlanBelowDissolutionThreshold(
                plan=size.plan, active_members=size.active,  # type: ignore[arg-type]
                threshold=threshold, detected_on=on,
                carries_on_until=_one_year_after(on)))
    return events, reached


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)
