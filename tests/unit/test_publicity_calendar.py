"""The publicity calendar (SPEC §2, §8): which round commands are due on a day. Pure."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mutualaid.rulebook import Rulebook, load_rulebook

from publicity.domain.calendar import (
    CATCH_UP_DAYS, Due, due_commands, is_publicity_day, known_rounds, latest_publicity_day,
    planned_round, terms_on)
from publicity.domain.model import Round

pytestmark = pytest.mark.domain

RULES = load_rulebook()
FIRST_RULES = RULES.versions[0].effective_from  # 2018-10-16
DATES = st.dates(min_value=date(2018, 9, 1), max_value=date(2035, 12, 31))


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def apply(state: dict[date, Round], due: Due) -> None:
    """What the service does with a command (the round's state after it)."""
    current = state.get(due.round_date)
    if due.kind == "open":
        assert current is None, f"open sent for an existing round {due}"
        state[due.round_date] = planned_round(RULES, due.round_date)
    else:
        assert current is not None and not current.closed, f"close of no open round {due}"
        state[due.round_date] = Round(current.round_date, current.objection_deadline, True,
                                      current.objection_deadline)


def simulate(ticks: Iterable[date], state: dict[date, Round] | None = None
             ) -> tuple[list[tuple[date, Due]], dict[date, Round]]:
    """Run the scheduler on each day of ``ticks``; every command is applied at once."""
    state = {} if state is None else state
    sent: list[tuple[date, Due]] = []
    for today in ticks:
        due = due_commands(today, RULES, state)
        for d in due:
            apply(state, d)
            sent.append((today, d))
        assert due_commands(today, RULES, state) == [], "a command due again once done"
    return sent, state


def rulebook_with(effective_from: date, **plan_changes: dict[str, object]) -> Rulebook:
    """The default rulebook plus one later version changing some plans' parameters."""
    data = RULES.model_dump(mode="json")
    version = copy.deepcopy(data["versions"][-1])
    version.update(version="test", effective_from=effective_from.isoformat())
    for plan, changes in plan_changes.items():
        version["plans"][plan].update(changes)
    data["versions"].append(version)
    return Rulebook.model_validate(data)


# -- terms and publicity days ---------------------------------------------------------------

def test_publicity_days_are_the_7th_and_21st_with_a_three_day_window():
    terms = terms_on(RULES, date(2024, 5, 1))
    assert terms is not None
    assert terms.days == {7, 21} and terms.objection_window_days == 3
    assert [d.day for d in days(date(2024, 5, 1), 31) if is_publicity_day(RULES, d)] == [7, 21]


def test_no_publicity_day_before_the_first_rule_version():
    assert terms_on(RULES, FIRST_RULES - timedelta(days=1)) is None
    assert not is_publicity_day(RULES, date(2018, 10, 7))
    assert is_publicity_day(RULES, date(2018, 10, 21))


def test_terms_follow_the_version_in_force_union_of_days_and_longest_window():
    book = rulebook_with(date(2025, 1, 1), critical_illness={"publicity_days": [5, 21]},
                         elderly_cancer={"objection_window_days": 5})
    assert terms_on(book, date(2024, 12, 31)).days == {7, 21}
    later = terms_on(book, date(2025, 1, 1))
    assert later.days == {5, 7, 21} and later.objection_window_days == 5
    assert planned_round(book, date(2025, 2, 5)).objection_deadline == date(2025, 2, 10)


def test_planned_round_refuses_a_day_that_is_not_a_publicity_day():
    assert planned_round(RULES, date(2024, 5, 7)) == Round(date(2024, 5, 7), date(2024, 5, 10),
                                                           closed=False)
    with pytest.raises(ValueError):
        planned_round(RULES, date(2024, 5, 8))


def test_latest_publicity_day_looks_back_at_most_the_catch_up_span():
    assert latest_publicity_day(RULES, date(2024, 5, 7)) == date(2024, 5, 7)
    assert latest_publicity_day(RULES, date(2024, 5, 20)) == date(2024, 5, 7)
    assert latest_publicity_day(RULES, date(2024, 5, 21)) == date(2024, 5, 21)
    assert CATCH_UP_DAYS == 14
    assert latest_publicity_day(RULES, date(2024, 1, 4)) == date(2023, 12, 21)
    assert latest_publicity_day(RULES, date(2024, 1, 5)) is None  # 15 days back


# -- due commands: examples -----------------------------------------------------------------

OPENED = {date(2024, 5, 7): Round(date(2024, 5, 7), date(2024, 5, 10), closed=False)}


def test_a_publicity_day_opens_its_round():
    assert due_commands(date(2024, 5, 7), RULES, {}) == [Due(date(2024, 5, 7), "open")]


def test_nothing_is_due_while_the_window_is_open_including_its_last_day():
    for today in days(date(2024, 5, 7), 4):
        assert due_commands(today, RULES, OPENED) == []


def test_the_close_is_due_the_day_after_the_deadline():
    assert due_commands(date(2024, 5, 11), RULES, OPENED) == [Due(date(2024, 5, 7), "close")]


def test_catch_up_opens_a_missed_round_only_while_members_can_still_object():
    assert due_commands(date(2024, 5, 9), RULES, {}) == [Due(date(2024, 5, 7), "open")]
    assert due_commands(date(2024, 5, 10), RULES, {}) == [Due(date(2024, 5, 7), "open")]
    # past its deadline a late round would close at once: its cases wait for the 21st
    assert due_commands(date(2024, 5, 11), RULES, {}) == []
    assert due_commands(date(2024, 5, 12), RULES, {}) == []
    # the 7th was missed too, but the 21st round publishes every waiting case anyway
    assert due_commands(date(2024, 5, 22), RULES, {}) == [Due(date(2024, 5, 21), "open")]


def test_nothing_older_than_the_catch_up_span_is_sent():
    assert due_commands(date(2024, 1, 5), RULES, {}) == []
    old = {date(2020, 6, 7): Round(date(2020, 6, 7), date(2020, 6, 10), closed=False)}
    # a round an operator opened for a past date is theirs to close
    assert due_commands(date(2024, 5, 8), RULES, old) == [Due(date(2024, 5, 7), "open")]


def test_nothing_is_due_before_the_first_rule_version():
    assert due_commands(date(2018, 10, 7), RULES, {}) == []


def test_commands_already_sent_count_as_done():
    sent = [Due(date(2024, 5, 7), "open")]
    known = known_rounds(RULES, [], sent)
    assert known == {date(2024, 5, 7): planned_round(RULES, date(2024, 5, 7))}
    assert due_commands(date(2024, 5, 7), RULES, known) == []
    both = known_rounds(RULES, [], [Due(date(2024, 5, 7), "close"), *sent])
    assert both[date(2024, 5, 7)].closed
    assert due_commands(date(2024, 5, 11), RULES, both) == []


def test_the_service_state_wins_over_the_record_of_sent_commands():
    handled = Round(date(2024, 5, 7), date(2024, 5, 10), closed=True, closed_on=date(2024, 5, 10))
    assert known_rounds(RULES, [handled], [Due(date(2024, 5, 7), "open")]) == {
        date(2024, 5, 7): handled}
    # an open sent for a day that is no publicity day (rulebook changed since) is ignored
    assert known_rounds(RULES, [], [Due(date(2024, 5, 8), "open")]) == {}


# -- due commands: properties ---------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(DATES, st.integers(min_value=1, max_value=90))
def test_ticking_daily_sends_exactly_the_publicity_day_opens_and_the_deadline_closes(start, n):
    # settle the calendar first, as a scheduler that has been running for a while
    _, state = simulate(days(start - timedelta(days=40), 40))
    sent, _ = simulate(days(start, n), state)
    expected = []
    for today in days(start, n):
        if is_publicity_day(RULES, today):
            expected.append((today, Due(today, "open")))
        expected += [(today, Due(r, "close")) for r in sorted(
            r for r in days(today - timedelta(days=20), 20)
            if is_publicity_day(RULES, r) and planned_round(RULES, r).objection_deadline
            == today - timedelta(days=1))]
    assert sent == expected


@settings(max_examples=80, deadline=None)
@given(DATES, st.lists(st.integers(min_value=0, max_value=120), max_size=40))
def test_with_gaps_each_command_is_sent_once_and_only_when_due(start, offsets):
    ticks = sorted({start + timedelta(days=o) for o in offsets})
    sent, _ = simulate(ticks)
    commands = [d for _, d in sent]
    assert len(commands) == len(set(commands)), "a command sent twice"
    opened: set[date] = set()
    for today, d in sent:
        if d.kind == "open":
            assert d.round_date == latest_publicity_day(RULES, today)
            assert today - timedelta(days=CATCH_UP_DAYS) <= d.round_date <= today
            opened.add(d.round_date)
        else:
            deadline = planned_round(RULES, d.round_date).objection_deadline
            assert d.round_date in opened
            assert today - timedelta(days=CATCH_UP_DAYS) <= deadline < today


ROUND_STATES = st.dictionaries(
    DATES, st.tuples(st.integers(min_value=1, max_value=5), st.booleans()), max_size=12
).map(lambda rs: {d: Round(d, d + timedelta(days=w), closed) for d, (w, closed) in rs.items()})


@settings(max_examples=200)
@given(DATES, ROUND_STATES)
def test_for_any_state_the_due_commands_are_new_and_once_applied_none_is_due(today, state):
    due = due_commands(today, RULES, state)
    assert len(due) == len(set(due))
    assert [d.kind for d in due] == sorted((d.kind for d in due), key=lambda k: k != "open")
    for d in due:
        if d.kind == "open":
            assert d.round_date not in state and is_publicity_day(RULES, d.round_date)
        else:
            assert not state.get(d.round_date, Round(d.round_date, today, False)).closed
    after = dict(state)
    for d in due:
        current = after.get(d.round_date) or planned_round(RULES, d.round_date)
        after[d.round_date] = current if d.kind == "open" else Round(
            current.round_date, current.objection_deadline, True, current.objection_deadline)
    assert due_commands(today, RULES, after) == []
