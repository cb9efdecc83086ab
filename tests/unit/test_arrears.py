"""Arrears rules: which failed debits count, and when the limit is reported."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.arrears import Debit, DebitStatus, dates_in, failed_streak, limit_just_reached

pytestmark = pytest.mark.domain

PAID, FAILED, SENT = DebitStatus.PAID, DebitStatus.FAILED, DebitStatus.SENT


def debit(day: int, status: DebitStatus, plan: str = "ci", settled: bool = False,
          month: int = 6) -> Debit:
    return Debit(f"2020-{month:02d}-{day:02d}/{plan}", date(2020, month, day), status, settled)


def test_two_failed_periods_in_a_row_make_a_run_of_two():
    debits = [debit(14, FAILED), debit(28, FAILED)]
    assert failed_streak(debits) == ["2020-06-28/ci", "2020-06-14/ci"]
    assert dates_in(debits, failed_streak(debits)) == 2


def test_a_paid_period_breaks_the_run():
    assert failed_streak([debit(14, FAILED), debit(28, PAID)]) == []
    assert failed_streak([debit(14, FAILED, month=5), debit(28, PAID, month=5),
                          debit(14, FAILED)]) == ["2020-06-14/ci"]


def test_settled_arrears_stop_counting_and_break_the_run():
    assert failed_streak([debit(14, FAILED, settled=True), debit(28, FAILED)]) == \
        ["2020-06-28/ci"]


def test_a_period_still_waiting_for_results_neither_extends_nor_breaks_the_run():
    debits = [debit(14, FAILED, month=5), debit(28, SENT, month=5), debit(14, FAILED)]
    assert dates_in(debits, failed_streak(debits)) == 2


def test_two_plans_on_one_sharing_date_count_as_one_date():
    debits = [debit(14, FAILED, "ci"), debit(14, FAILED, "ec")]
    assert dates_in(debits, failed_streak(debits)) == 1


def test_the_limit_is_reported_once_per_run():
    assert [limit_just_reached(n, 2) for n in (1, 2, 3)] == [False, True, False]


@given(st.lists(st.sampled_from([PAID, FAILED, SENT]), min_size=1, max_size=24))
def test_the_run_is_the_failed_tail_ignoring_pending(statuses: list[DebitStatus]) -> None:
    days = [date(2020 + i // 24, i // 2 % 12 + 1, 14 if i % 2 == 0 else 28)
            for i in range(len(statuses))]
    debits = [Debit(f"p{i}", d, s) for i, (d, s) in enumerate(zip(days, statuses, strict=True))]
    expected: list[str] = []
    for d in reversed(debits):
        if d.status is FAILED:
            expected.append(d.period_id)
        elif d.status is PAID:
            break
    assert failed_streak(debits) == expected
