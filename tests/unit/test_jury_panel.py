"""Panel draws (SPEC §6 panel mode): reproducible, odd, never an excluded member. Pure."""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mutualaid.rulebook import load_rulebook

from jury.domain import panel
from jury.domain.model import Candidate, JuryCase

pytestmark = pytest.mark.domain

JURY = load_rulebook().version_on(date(2024, 5, 10)).plan("critical_illness").jury
CLOSES_AT = datetime(2024, 5, 13, tzinfo=timezone(timedelta(hours=8)))


def panel_case(case_id: str = "c-1", *, draw_round: int = 0, seats: int = 0,
               panel_size: int = JURY.panel_size) -> JuryCase:
    return JuryCase(case_id, origin="appeal", plan="critical_illness", claimant_id="m-1",
                    claimant_payer_id="p-1", mode="panel", min_votes=JURY.min_votes,
                    approval_majority_pct=50, panel_size=panel_size, quorum_numerator=2,
                    quorum_denominator=3, vote_window_hours=72,
                    opens_at=CLOSES_AT - timedelta(hours=72), closes_at=CLOSES_AT,
                    draw_round=draw_round, seats=seats)


def juror(member_id: str, payer_id: str | None = None, active: bool = True) -> Candidate:
    return Candidate(member_id, payer_id or member_id, date(1980, 1, 1), date(2020, 1, 1), active)


POOL = [f"j-{i:03d}" for i in range(60)]


def test_seed_is_the_documented_sha256_of_case_and_round():
    assert panel.seed("c-1", 1) == hashlib.sha256(b"c-1:1").hexdigest()
    assert len(panel.seed("c-1", 1)) == 64


def test_order_is_the_documented_keyed_blake2b():
    seed = panel.seed("c-1", 1)
    expected = sorted(POOL, key=lambda m: hashlib.blake2b(
        m.encode(), key=bytes.fromhex(seed), digest_size=16).digest())
    assert panel.order(POOL, seed) == expected
    assert panel.order(POOL, seed, 5) == expected[:5]


@pytest.mark.parametrize("kept, size, available, expected", [
    (0, 11, 100, 11), (0, 11, 11, 11), (0, 11, 10, 9), (0, 11, 1, 1), (0, 11, 0, 0),
    (4, 11, 100, 7), (5, 11, 100, 6), (5, 11, 3, 2), (4, 11, 2, 1), (5, 11, 1, 0),
    (4, 11, 0, 0), (11, 11, 5, 0), (10, 11, 5, 1),
])
def test_new_seats_keep_the_panel_odd_and_within_its_size(kept, size, available, expected):
    assert panel.new_seats(kept, size, available) == expected


def test_first_draw_seats_panel_size_jurors_in_seed_order():
    drawn = panel.draw(panel_case(), POOL)
    assert drawn is not None
    e = drawn.event
    assert (e.case_id, e.draw_round, e.seed, e.origin) == ("c-1", 1, panel.seed("c-1", 1),
                                                           "appeal")
    assert e.juror_ids == tuple(panel.order(POOL, e.seed)[:11]) == drawn.seated
    assert e.kept_juror_ids == () and drawn.released == ()
    assert e.voting_closes_at == CLOSES_AT
    assert (drawn.case.draw_round, drawn.case.seats) == (1, 11)


def test_with_fewer_eligible_than_the_size_the_largest_odd_number_is_drawn():
    drawn = panel.draw(panel_case(), POOL[:8])
    assert drawn is not None and len(drawn.event.juror_ids) == 7 and drawn.case.seats == 7


def test_nobody_eligible_means_no_draw():
    assert panel.draw(panel_case(), []) is None


def test_redraw_keeps_voters_and_replaces_the_others_with_new_jurors():
    first = panel.draw(panel_case(), POOL)
    assert first is not None
    seated = first.event.juror_ids
    voters = set(seated[:4])
    remaining = [j for j in POOL if j not in seated]  # never drawn twice for a case
    second = panel.draw(first.case, remaining, panel=seated, voters=voters)
    assert second is not None
    e = second.event
    assert e.draw_round == 2 and e.seed == panel.seed("c-1", 2)
    assert e.kept_juror_ids == tuple(sorted(voters))
    assert set(second.released) == set(seated) - voters
    assert len(e.juror_ids) == 11 and set(e.juror_ids[:4]) == voters
    assert not set(second.seated) & set(seated)
    assert second.seated == tuple(panel.order(remaining, e.seed)[:7])


def test_a_redraw_with_nobody_left_to_draw_changes_nothing():
    first = panel.draw(panel_case(), POOL[:11])
    assert first is not None
    assert panel.draw(first.case, [], panel=first.event.juror_ids, voters={"j-000"}) is None


def test_eligible_leaves_out_claimant_payers_members_objectors_inactive_and_earlier_panels():
    case = panel_case()
    jurors = [juror("m-1", "p-1"), juror("p-1"), juror("k-1", "p-1"), juror("o-1"),
              juror("x-1", active=False), juror("s-1"), juror("ok-1"), juror("ok-2", "z-9")]
    assert panel.eligible(case, jurors, {"o-1"}, {"s-1"}) == ["ok-1", "ok-2"]


# -- properties ------------------------------------------------------------------------------

member_ids = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(case_id=member_ids, draw_round=st.integers(1, 50),
       pool=st.lists(member_ids, max_size=80, unique=True), size=st.sampled_from([1, 3, 5, 11]))
def test_draws_are_reproducible_odd_and_independent_of_listing_order(case_id, draw_round, pool,
                                                                     size):
    case = panel_case(case_id, draw_round=draw_round - 1, panel_size=size)
    shuffled = list(pool)
    random.Random(draw_round).shuffle(shuffled)
    one, two = panel.draw(case, pool), panel.draw(case, shuffled)
    if not pool:
        assert one is None and two is None
        return
    assert one is not None and two is not None
    assert one.event == two.event
    n = len(one.event.juror_ids)
    largest_odd_available = len(pool) if len(pool) % 2 else len(pool) - 1
    assert n % 2 == 1 and n == min(size, largest_odd_available)
    assert len(set(one.event.juror_ids)) == n and set(one.event.juror_ids) <= set(pool)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(0, 60))
def test_a_draw_never_seats_an_excluded_member(data, n):
    case = panel_case()
    payers = ["p-1", "q-1", "q-2"]
    jurors = [juror(f"j-{i}", data.draw(st.sampled_from(payers + [f"j-{i}"]))) for i in range(n)]
    jurors += [juror("m-1", "p-1"), juror("p-1")]
    objectors = set(data.draw(st.lists(st.sampled_from([j.member_id for j in jurors]))))
    earlier = set(data.draw(st.lists(st.sampled_from([j.member_id for j in jurors]))))
    drawn = panel.draw(case, panel.eligible(case, jurors, objectors, earlier))
    seated = set(drawn.event.juror_ids) if drawn else set()
    by_id = {j.member_id: j for j in jurors}
    for member_id in seated:
        assert member_id not in ("m-1", "p-1") and by_id[member_id].payer_id != "p-1"
        assert member_id not in objectors and member_id not in earlier


@settings(max_examples=100, deadline=None)
@given(case_id=member_ids, other=member_ids, draw_round=st.integers(1, 1000))
def test_panels_differ_between_rounds_and_between_cases(case_id, other, draw_round):
    # 11 of 60: two independent draws coincide with probability 1 / C(60, 11) ~ 2e-12.
    first = panel.draw(panel_case(case_id, draw_round=draw_round - 1), POOL)
    later = panel.draw(panel_case(case_id, draw_round=draw_round), POOL)
    assert first is not None and later is not None
    assert set(first.event.juror_ids) != set(later.event.juror_ids)
    if other != case_id:
        elsewhere = panel.draw(panel_case(other, draw_round=draw_round - 1), POOL)
        assert elsewhere is not None
        assert set(first.event.juror_ids) != set(elsewhere.event.juror_ids)
