"""The publicity calendar (SPEC §2, §8): which round commands are due on a day. Pure.

A round opens on each publicity day of the rule version in force (the 7th and 21st). Its
objection window runs from the round date to the deadline, both included (an objection dated
the deadline is accepted), so the window has ended, and the close is due, from the day after
the deadline. The close carries no ``closed_on``, so its outcomes are dated the deadline,
exactly as when an external cron sends the same command.

Catch-up: when the scheduler did not run on a publicity day, the latest publicity day of the
last ``CATCH_UP_DAYS`` is opened late, but only while its objection window is still open:
a round opened after its deadline would close at once and leave members no time to object,
so its cases wait for the next round instead. Earlier days are not opened, because the
latest round publishes every case still waiting anyway. Closes are caught up over the same span; a round
whose deadline lies further back (e.g. one an operator opened for a past date) is left to
whoever opened it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from typing import Literal

from mutualaid.rulebook import RuleLookupError, Rulebook

from .model import PublicityTerms, Round

#: The plan's calendar: China Standard Time, UTC+8 all year (no daylight saving).
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
CATCH_UP_DAYS = 14

Kind = Literal["open", "close"]


@dataclass(frozen=True, slots=True)
class Due:
    """A calendar command to send: open or close the round of ``round_date``."""

    round_date: date
    kind: Kind


def terms_on(rulebook: Rulebook, day: date) -> PublicityTerms | None:
    """Publicity days and window of the rule version in force on ``day``; ``None`` before the
    first version. Rounds are shared by every plan, so a day is a publicity day when it is one
    for any plan, and the window is the longest any plan grants (no member gets less time to
    object than their plan promises)."""
    try:
        plans = rulebook.version_on(day).plans.values()
    except RuleLookupError:
        return None
    return PublicityTerms(days=frozenset(d for p in plans for d in p.publicity_days),
                          objection_window_days=max(p.objection_window_days for p in plans))


def is_publicity_day(rulebook: Rulebook, day: date) -> bool:
    terms = terms_on(rulebook, day)
    return terms is not None and terms.is_publicity_day(day)


def planned_round(rulebook: Rulebook, round_date: date) -> Round:
    """The round a publicity day opens, as ``open_round`` will create it."""
    terms = terms_on(rulebook, round_date)
    if terms is None or not terms.is_publicity_day(round_date):
        raise ValueError(f"{round_date} is not a publicity day")
    return Round(round_date, round_date + timedelta(days=terms.objection_window_days),
                 closed=False)


def latest_publicity_day(rulebook: Rulebook, today: date, *,
                         catch_up_days: int = CATCH_UP_DAYS) -> date | None:
    """The latest publicity day in ``[today - catch_up_days, today]``."""
    for back in range(catch_up_days + 1):
        day = today - timedelta(days=back)
        if is_publicity_day(rulebook, day):
            return day
    return None


def known_rounds(rulebook: Rulebook, rounds: Iterable[Round], sent: Iterable[Due]
                 ) -> dict[date, Round]:
    """Rounds as the scheduler must see them: those the service has handled, plus those whose
    command the scheduler already sent but the service has not handled yet (so a command in
    flight is not sent again on the next tick)."""
    known = {r.round_date: r for r in rounds}
    for due in sorted(sent, key=lambda d: (d.kind != "open", d.round_date)):
        current = known.get(due.round_date)
        if due.kind == "open" and current is None and is_publicity_day(rulebook, due.round_date):
            known[due.round_date] = planned_round(rulebook, due.round_date)
        elif due.kind == "close" and current is not None and not current.closed:
            known[due.round_date] = Round(current.round_date, current.objection_deadline,
                                          closed=True, closed_on=current.objection_deadline)
    return known


def due_commands(today: date, rulebook: Rulebook, rounds: Mapping[date, Round], *,
                 catch_up_days: int = CATCH_UP_DAYS) -> list[Due]:
    """The commands due on ``today`` (a date in China Standard Time) given the rounds already
    opened or closed (``known_rounds``): at most one open, then the closes in date order."""
    due: list[Due] = []
    known = dict(rounds)
    latest = latest_publicity_day(rulebook, today, catch_up_days=catch_up_days)
    if (latest is not None and latest not in known
            and planned_round(rulebook, latest).objection_deadline >= today):
        due.append(Due(latest, "open"))
        known[latest] = planned_round(rulebook, latest)
    earliest = today - timedelta(days=catch_up_days)
    due += [Due(r.round_date, "close") for r in sorted(known.values(), key=_by_date)
            if not r.closed and earliest <= r.objection_deadline < today]
    return due


def _by_date(r: Round) -> date:
    return r.round_date
