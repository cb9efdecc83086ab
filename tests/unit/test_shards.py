"""Sharded pricing (``billing.domain.shards``) against the reference money rule
(``billing.domain.sharing``), checked over random periods with the real rulebook.

The coordinator's ``plan_period`` and the workers' ``price_shard`` must charge every member
exactly what ``share_period`` charges, whatever the number of shards; every shard's books
balance to the fen; and what a worker sends (its debit batches) is the same bytes on every
run, so a shard priced again is dropped as a copy downstream (SPEC §1, §7).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from itertools import pairwise

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.adapters.instruction_stream import debit_batches
from billing.domain import instructions as ins
from billing.domain.shards import (
    PeriodPlan,
    RollChanged,
    RollSlice,
    ShardCharges,
    ShardPlan,
    check_shard,
    debits,
    plan_period,
    price_shard,
)
from billing.domain.sharing import (
    ROLL_BUCKETS,
    ApprovedCase,
    MoneyEquationBroken,
    PeriodResult,
    Sharer,
    bucket_of,
    share_period,
)
from mutualaid.contracts.billing import PaymentInstructionBatch
from mutualaid.contracts.envelope import encode_event, typed_envelope
from mutualaid.rulebook import PlanRules, load_rulebook

RULEBOOK = load_rulebook()
#: per-case cap and operator-funded window; annual cap of 18,800 fen and the window; no caps
VERSIONS = ("2018-10-16", "2019-01-01", "2020-01-01")
PLAN_IDS = ("critical_illness", "elderly_cancer", "chronic_cancer")
ANNUAL_CAP = 18_800
WINDOW_JOINED_BEFORE = date(2018, 12, 31)  # members who joined before it pay nothing ...
WINDOW_PERIODS_BEFORE = date(2019, 1, 31)  # ... in periods shared before this date
TASK_COUNTS = (1, 3, 7, 64)
SOURCE = "mutualaid/billing"

EXAMPLES = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.domain
def test_the_rulebook_versions_are_the_ones_these_tests_assume() -> None:
    # The generated rolls straddle these figures; if they change, revisit the strategies.
    launch, capped, uncapped = (RULEBOOK.version(v).plan("critical_illness") for v in VERSIONS)
    assert (launch.per_case_cap_fen, launch.annual_cap_fen) == (10, None)
    assert (capped.per_case_cap_fen, capped.annual_cap_fen) == (None, ANNUAL_CAP)
    assert (uncapped.per_case_cap_fen, uncapped.annual_cap_fen) == (None, None)
    for plan in (launch, capped):
        (window,) = plan.operator_funded_windows
        assert (window.joined_before, window.periods_before) == (WINDOW_JOINED_BEFORE,
                                                                 WINDOW_PERIODS_BEFORE)
    assert uncapped.operator_funded_windows == ()


# -- random periods --------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Period:
    """One plan's sharing period: its rules, approved cases and roll (in no useful order)."""

    period_id: str
    version: str
    sharing_date: date
    plan: PlanRules
    cases: tuple[ApprovedCase, ...]
    sharers: tuple[Sharer, ...]

    def __repr__(self) -> str:  # the plan's repr runs to pages
        return (f"Period({self.period_id!r}, rules {self.version}, benefits "
                f"{[c.benefit_fen for c in self.cases]}, {len(self.sharers)} members)")

    @property
    def benefits_fen(self) -> int:
        return sum(c.benefit_fen for c in self.cases)

    @property
    def total_fen(self) -> int:
        return self.benefits_fen + self.plan.management_fee_fen(self.benefits_fen)

    @cached_property
    def reference(self) -> PeriodResult:
        return share_period(self.period_id, self.sharing_date, self.plan, self.cases,
                            self.sharers)

    @cached_property
    def worker_order(self) -> tuple[tuple[Sharer, ...], list[int]]:
        """The roll as workers read it, by (payer bucket, member id), and its buckets."""
        rows = tuple(sorted(self.sharers, key=lambda s: (bucket_of(s.payer_id), s.member_id)))
        return rows, [bucket_of(s.payer_id) for s in rows]


FAMILY_MEMBERS = (0, 1, 2, 3)
FAMILY_WEIGHTS = (80, 12, 5, 3)  # 0.31 family members a payer: about 1.3 members a payer


def joined_on(rng: random.Random) -> date:
    kind = rng.random()
    if kind < 0.35:  # during the launch window: 2018-10-16 .. 2018-12-30
        return WINDOW_JOINED_BEFORE - timedelta(days=rng.randint(1, 76))
    if kind < 0.45:  # on the cut-off day itself, which is not "before"
        return WINDOW_JOINED_BEFORE
    return date(2019, 1, 1) + timedelta(days=rng.randint(0, 3 * 365))


def paid_before(rng: random.Random) -> int:
    """Paid in the plan earlier this year: often nothing, often at or near the annual cap,
    sometimes beyond it (paid under an earlier, higher figure)."""
    kind = rng.random()
    if kind < 0.4:
        return 0
    if kind < 0.6:
        return rng.randint(0, ANNUAL_CAP)
    if kind < 0.8:
        return ANNUAL_CAP - rng.randint(0, 60)
    if kind < 0.85:
        return ANNUAL_CAP
    return rng.randint(ANNUAL_CAP + 1, 25_000)


def make_roll(payers: int, rng: random.Random) -> tuple[Sharer, ...]:
    """``payers`` payers, each paying for themself or not and for 0-3 family members. Member
    ids are drawn at random (a few non-ASCII), so member-id order is not payer order."""
    families = rng.choices(FAMILY_MEMBERS, FAMILY_WEIGHTS, k=payers)
    numbers = iter(rng.sample(range(10 * (payers * 4 + 1)), sum(families) + payers))
    sharers = []
    for payer_no, family in enumerate(families):
        ids = [f"会员-{k}" if k % 17 == 0 else f"m{k:07d}"
               for k in (next(numbers) for _ in range(family + 1))]
        # half the payers are members paying for themself (payer id = their member id)
        payer = ids[0] if rng.random() < 0.5 else f"payer-{payer_no:05d}"
        sharers += [Sharer(m, payer, joined_on(rng), paid_before(rng)) for m in ids]
    rng.shuffle(sharers)
    return tuple(sharers)


SHARING_DATES = st.builds(
    lambda ym, day: date(*ym, day),
    # the window is open for sharing dates before 2019-01-31, closed after
    st.sampled_from([(2018, 11), (2018, 12), (2019, 1), (2019, 2), (2019, 7), (2020, 3),
                     (2021, 12)]),
    st.sampled_from([14, 28]))
# small benefits leave a total of a few fen a member or less (the extra fen matter, caps
# rarely bite); large ones make shares well above the caps
BENEFITS = st.lists(st.one_of(st.integers(0, 5_000), st.integers(0, 30_000_000)), max_size=6)


@st.composite
def periods(draw: st.DrawFn, max_payers: int = 1500) -> Period:
    version = draw(st.sampled_from(VERSIONS), label="version")
    plan_id = draw(st.sampled_from(PLAN_IDS), label="plan")
    sharing_date = draw(SHARING_DATES, label="sharing_date")
    cases = tuple(ApprovedCase(f"case-{i:02d}", f"claimant-{i:02d}", b)
                  for i, b in enumerate(draw(BENEFITS, label="benefits")))
    # small rolls (a new plan, a test period) as well as rolls filling many buckets
    payers = draw(st.one_of(st.integers(0, 12), st.integers(0, max_payers),
                            st.integers(max_payers // 2, max_payers)), label="payers")
    seed = draw(st.integers(0, 2**32 - 1), label="roll seed")
    return Period(f"{sharing_date.isoformat()}/{plan_id}", version, sharing_date,
                  RULEBOOK.version(version).plan(plan_id), cases,
                  make_roll(payers, random.Random(seed)))


# -- pricing a period in shards, as the coordinator and the workers do ------------------


@dataclass(frozen=True)
class Shard:
    plan: ShardPlan
    roll: RollSlice


@dataclass(frozen=True)
class Priced:
    plan: ShardPlan
    roll: RollSlice
    charges: ShardCharges


def roll_slice(rows: tuple[Sharer, ...]) -> RollSlice:
    return RollSlice(
        member_ids=[s.member_id for s in rows], payer_ids=[s.payer_id for s in rows],
        buckets=np.array([bucket_of(s.payer_id) for s in rows], dtype=np.int64),
        joined_on=np.array([s.joined_on.toordinal() for s in rows], dtype=np.int64),
        paid_before_fen=np.array([s.paid_this_year_fen for s in rows], dtype=np.int64))


def cut(period: Period, tasks: int) -> tuple[PeriodPlan, list[Shard]]:
    """The coordinator's plan from the per-bucket counts, and each shard's slice of the roll
    (the rows of its bucket range, by bucket and member id)."""
    rows, buckets = period.worker_order
    plan = plan_period(period.period_id, period.total_fen, Counter(buckets), tasks=tasks,
                       cases=len(period.cases), plan=period.plan,
                       sharing_date=period.sharing_date)
    return plan, [Shard(s, roll_slice(rows[bisect_left(buckets, s.bucket_lo):
                                            bisect_left(buckets, s.bucket_hi)]))
                  for s in plan.shards]


def price(period: Period, tasks: int) -> tuple[PeriodPlan, list[Priced]]:
    plan, shards = cut(period, tasks)
    return plan, [Priced(s.plan, s.roll, price_shard(s.plan, s.roll)) for s in shards]


def charges_by_member(shards: list[Priced]) -> dict[str, tuple[int, int]]:
    return {m: (share, pays) for s in shards
            for m, share, pays in zip(s.roll.member_ids, s.charges.share_fen.tolist(),
                                      s.charges.member_pays_fen.tolist(), strict=True)}


def encoded_debits(period: Period, shards: list[Priced], *, size: int,
                   correlationid: str | None) -> list[tuple[bytes, bytes]]:
    """What the workers send for the period: each shard's debit batches."""
    return [batch for s in shards for batch in debit_batches(
        period.period_id, debits(s.roll, s.charges.member_pays_fen.tolist()), size=size,
        source=SOURCE, correlationid=correlationid)]


def without_time(batches: list[tuple[bytes, bytes]]) -> list[tuple[bytes, dict]]:
    """Keys and parsed events, all but the ``time`` attribute (when they were encoded)."""
    out = []
    for key, raw in batches:
        doc = orjson.loads(raw)
        assert isinstance(doc.pop("time"), str)
        out.append((key, doc))
    return out


# -- a. the same charges as the reference, whatever the shard count ---------------------


@pytest.mark.domain
@EXAMPLES
@given(periods())
def test_sharded_pricing_equals_the_reference_whatever_the_shard_count(period: Period
                                                                       ) -> None:
    """Each member's share and payment from ``plan_period`` + ``price_shard`` equal what
    ``share_period`` charges (paid this year = paid before the period), for 1, 3, 7 and 64
    shard tasks: how a run is cut up never changes anyone's charge."""
    ref = period.reference
    expected = {c.member_id: (c.share_fen, c.member_pays_fen) for c in ref.charges}
    for tasks in TASK_COUNTS:
        plan, shards = price(period, tasks)
        assert (plan.total_fen, plan.members, plan.base_share_fen, plan.paying_one_fen_more
                ) == (ref.total_fen, len(period.sharers), ref.base_share_fen,
                      ref.members_paying_one_fen_more)
        # at most `tasks` contiguous ranges of buckets, covering every bucket once
        assert 1 <= len(plan.shards) <= tasks
        assert [s.task_no for s in plan.shards] == list(range(len(plan.shards)))
        assert plan.shards[0].bucket_lo == 0 and plan.shards[-1].bucket_hi == ROLL_BUCKETS
        assert all(a.bucket_hi == b.bucket_lo for a, b in pairwise(plan.shards))
        assert sum(len(s.roll.member_ids) for s in shards) == len(period.sharers)
        assert charges_by_member(shards) == expected, f"{tasks} shard tasks"


# -- b. the money equation -------------------------------------------------------------


@pytest.mark.domain
@EXAMPLES
@given(periods())
def test_debits_plus_subsidy_equal_benefits_plus_fee_to_the_fen(period: Period) -> None:
    """``sum(member debits) + subsidy == benefits + fee``, where the fee is the rulebook
    rate of the benefits rounded half up: each shard's debits and subsidy add up to the
    shares it planned, the shards' shares to the total; with nobody on the roll the whole
    total is the operator's subsidy (as in ``share_period``)."""
    benefits = period.benefits_fen
    fee = int((Decimal(benefits) * period.plan.management_fee_bps / 10_000).quantize(
        Decimal(1), rounding=ROUND_HALF_UP))
    for tasks in TASK_COUNTS:
        _, shards = price(period, tasks)
        member_debits = subsidy = shares = 0
        for s in shards:
            share, pays = s.charges.share_fen, s.charges.member_pays_fen
            assert int(share.sum()) == s.plan.shares_fen
            member_debits += int(pays.sum())
            subsidy += int((share - pays).sum())  # what the members did not pay
            shares += int(share.sum())
        if period.sharers:
            assert shares == benefits + fee
        else:
            assert member_debits == subsidy == shares == 0
            subsidy = benefits + fee  # nobody shares: the operator pays it all
        assert member_debits + subsidy == benefits + fee
        assert (member_debits, subsidy) == (period.reference.member_debits_fen,
                                            period.reference.subsidy_fen)


@pytest.mark.domain
def test_nobody_on_the_roll_the_operator_pays_the_whole_total() -> None:
    uncapped = RULEBOOK.version("2020-01-01").plan("critical_illness")
    period = Period("2020-03-14/critical_illness", "2020-01-01", date(2020, 3, 14), uncapped,
                    (ApprovedCase("case-00", "claimant-00", 1_000),), ())
    ref = period.reference
    assert (ref.total_fen, ref.member_debits_fen, ref.subsidy_fen) == (1_080, 0, 1_080)
    for tasks in TASK_COUNTS:
        plan, shards = price(period, tasks)
        assert (plan.total_fen, plan.members, plan.base_share_fen,
                plan.paying_one_fen_more) == (1_080, 0, 0, 0)
        assert all(s.charges.share_fen.size == 0 and s.charges.shares_fen == 0
                   and s.charges.member_debits_fen == s.charges.subsidy_fen == 0
                   for s in shards)
        assert encoded_debits(period, shards, size=10, correlationid=None) == []


# -- c. the extra fen and the caps -----------------------------------------------------


def keyed_order(period_id: str, member_ids: list[str]) -> list[str]:
    """The documented order within a bucket: BLAKE2b-128 of the member id keyed by the
    period id, ties by member id."""
    return sorted(member_ids, key=lambda m: (hashlib.blake2b(
        m.encode(), key=period_id.encode(), digest_size=16).digest(), m))


@pytest.mark.domain
@EXAMPLES
@given(periods(), st.sampled_from(TASK_COUNTS))
def test_exactly_total_mod_n_members_pay_one_fen_more_and_the_caps_hold(
        period: Period, tasks: int) -> None:
    """Exactly ``total mod n`` members owe ``base + 1``: in each bucket its pro-rata part of
    them rounded down or up, the first in the period's keyed order. Then nobody's paid in
    the year goes past the annual cap unless it was past it already (and then they pay
    nothing), members in an open operator-funded window pay nothing, and nobody pays more
    than the per-case cap."""
    plan, shards = price(period, tasks)
    n, total = len(period.sharers), period.total_fen
    share = np.concatenate([s.charges.share_fen for s in shards])
    if n:
        base, extra = divmod(total, n)
        assert set(share.tolist()) <= {base, base + 1}
        assert int((share == base + 1).sum()) == extra == plan.paying_one_fen_more
        assert sum(s.charges.paying_one_fen_more for s in shards) == extra
        for s in shards:
            members_of: dict[int, list[str]] = defaultdict(list)
            plus_one: dict[int, set[str]] = defaultdict(set)
            for b, m, v in zip(s.roll.buckets.tolist(), s.roll.member_ids,
                               s.charges.share_fen.tolist(), strict=True):
                members_of[b].append(m)
                if v == base + 1:
                    plus_one[b].add(m)
            for b, ids in members_of.items():
                e_b = s.plan.extras[b - s.plan.bucket_lo]
                assert e_b in (extra * len(ids) // n, -(-extra * len(ids) // n))
                assert plus_one[b] == set(keyed_order(period.period_id, ids)[:e_b])

    rules = period.plan
    window_open = period.sharing_date < WINDOW_PERIODS_BEFORE and bool(
        rules.operator_funded_windows)
    for s in shards:
        c = s.charges
        before, pays, in_year = s.roll.paid_before_fen, c.member_pays_fen, c.paid_in_year_fen
        assert np.array_equal(in_year, before + pays)
        assert np.all((0 <= pays) & (pays <= c.share_fen))
        if rules.annual_cap_fen is not None:
            assert np.all(in_year[before <= rules.annual_cap_fen] <= rules.annual_cap_fen)
            assert np.all(pays[before >= rules.annual_cap_fen] == 0)
            assert np.all(in_year <= np.maximum(rules.annual_cap_fen, before))
        if rules.per_case_cap_fen is not None:
            assert np.all(pays <= rules.per_case_cap_fen * len(period.cases))
        joined_in_window = s.roll.joined_on < WINDOW_JOINED_BEFORE.toordinal()
        if window_open:
            assert np.all(pays[joined_in_window] == 0)


# -- d. reproducible pricing and debit batches -----------------------------------------


@pytest.mark.domain
@EXAMPLES
@given(periods(max_payers=600), st.sampled_from(TASK_COUNTS), st.integers(1, 6),
       st.sampled_from([None, "run-7f3a"]))
def test_pricing_and_debit_batches_are_reproducible(period: Period, tasks: int, size: int,
                                                    correlationid: str | None) -> None:
    """Pricing a shard again gives the same arrays, and its debit batches the same bytes
    except the ``time`` attribute, whatever the shard count. Each batch is a valid
    PaymentInstructionBatch under its payers' bucket key; each paying payer gets one debit,
    ``<period>/debit/<payer>``, for the sum of its lines: the reference's debits."""
    _, shards = price(period, tasks)
    for s in shards:
        again = price_shard(s.plan, s.roll)
        for field in ("share_fen", "member_pays_fen", "paid_in_year_fen"):
            a, b = getattr(s.charges, field), getattr(again, field)
            assert a.dtype == b.dtype == np.int64 and np.array_equal(a, b)

    sent = encoded_debits(period, shards, size=size, correlationid=correlationid)
    assert without_time(sent) == without_time(
        encoded_debits(period, shards, size=size, correlationid=correlationid))
    # one task or many: the same batches, with the same event ids, under the same keys
    _, whole = price(period, 1)
    assert without_time(sent) == without_time(
        encoded_debits(period, whole, size=size, correlationid=correlationid))

    envelope = typed_envelope(PaymentInstructionBatch)
    batch_nos: dict[bytes, list[int]] = defaultdict(list)
    event_ids, got = [], {}
    for key, raw in sent:
        doc = orjson.loads(raw)
        batch = PaymentInstructionBatch.model_validate(doc["data"])
        assert envelope.model_validate_json(raw).data == batch
        assert (doc["type"], doc["source"], doc["subject"]) == (
            PaymentInstructionBatch.TYPE, SOURCE, batch.shard)
        assert doc.get("correlationid") == correlationid
        # the bytes a pydantic encoding of the same batch would give
        assert raw == encode_event(batch, source=SOURCE, id=doc["id"], time=doc["time"],
                                   correlationid=correlationid)
        assert key == batch.shard.encode() and batch.period_id == period.period_id
        assert 1 <= len(batch.instructions) <= size
        batch_nos[key].append(batch.batch_no)
        event_ids.append(doc["id"])
        for i in batch.instructions:
            assert (i.kind, i.period_id, i.case_id) == ("debit", period.period_id, None)
            assert i.instruction_id == ins.instruction_id(period.period_id, "debit",
                                                          i.account_id)
            assert ins.parse_instruction_id(i.instruction_id) == (period.period_id, "debit",
                                                                  i.account_id)
            assert key.decode() == ins.batch_key(bucket_of(i.account_id))
            assert i.amount_fen == sum(line.amount_fen for line in i.lines) > 0
            assert all(line.amount_fen > 0 for line in i.lines)
            assert i.instruction_id not in got  # one debit per payer
            got[i.instruction_id] = (i.account_id, i.amount_fen,
                                     {line.member_id: line.amount_fen for line in i.lines})
    assert all(nos == list(range(len(nos))) for nos in batch_nos.values())
    assert len(set(event_ids)) == len(event_ids)
    expected = {d.instruction_id: (d.account_id, d.amount_fen,
                                   {line.member_id: line.amount_fen for line in d.lines})
                for d in ins.build(period.reference, period.cases) if d.kind == "debit"}
    assert got == expected


# -- e. a changed roll and tampered charges are refused --------------------------------


def with_members(period: Period) -> bool:
    return bool(period.sharers)


@pytest.mark.domain
@EXAMPLES
@given(periods(max_payers=400).filter(with_members), st.sampled_from(TASK_COUNTS),
       st.data())
def test_a_roll_that_changed_since_the_count_is_refused(period: Period, tasks: int,
                                                        data: st.DataObject) -> None:
    """A worker prices only the roll the run counted: a slice with a member fewer or a
    member more than its plan raises RollChanged."""
    _, shards = cut(period, tasks)
    shard = data.draw(st.sampled_from([s for s in shards if s.plan.member_count]),
                      label="shard")
    rows = tuple(Sharer(m, p, date.fromordinal(j), b) for m, p, j, b in zip(
        shard.roll.member_ids, shard.roll.payer_ids, shard.roll.joined_on.tolist(),
        shard.roll.paid_before_fen.tolist(), strict=True))
    price_shard(shard.plan, roll_slice(rows))  # the slice as counted is priced

    gone = data.draw(st.integers(0, len(rows) - 1), label="member who left")
    fewer = rows[:gone] + rows[gone + 1:]
    payer = rows[data.draw(st.integers(0, len(rows) - 1), label="payer")].payer_id
    newcomer = Sharer("zz-newcomer", payer, date(2019, 6, 1))  # a family member added late
    more = tuple(sorted(rows + (newcomer,), key=lambda s: (bucket_of(s.payer_id),
                                                           s.member_id)))
    for changed in (fewer, more):
        assert len(changed) != shard.plan.member_count
        with pytest.raises(RollChanged):
            price_shard(shard.plan, roll_slice(changed))


def tampered(charges: ShardCharges, *changes: tuple[str, int, int]) -> ShardCharges:
    """``charges`` with ``(field, row, delta)`` changes applied to copies of its arrays."""
    arrays = {}
    for field, row, delta in changes:
        arrays.setdefault(field, getattr(charges, field).copy())[row] += delta
    return dataclasses.replace(charges, **arrays)


def pays_more(row: int, fen: int) -> tuple[tuple[str, int, int], ...]:
    """A member charged ``fen`` more (and so paid that much more in the year)."""
    return ("member_pays_fen", row, fen), ("paid_in_year_fen", row, fen)


@pytest.mark.domain
@EXAMPLES
@given(periods(max_payers=400).filter(with_members), st.sampled_from(TASK_COUNTS),
       st.data())
def test_tampered_charges_break_the_shard_books(period: Period, tasks: int,
                                                data: st.DataObject) -> None:
    """``check_shard`` refuses charges that no longer match the shard's plan: a share a fen
    up or down, a member paying more than their share or less than nothing, one fen more on
    a member paying their whole share, two extra fen on one member, a member pushed past
    the annual cap."""
    _, shards = price(period, tasks)
    s = data.draw(st.sampled_from([s for s in shards if s.plan.member_count]), label="shard")
    c = s.charges
    check_shard(c)  # the genuine charges pass
    row = data.draw(st.integers(0, len(c.share_fen) - 1), label="row")
    share, pays = int(c.share_fen[row]), int(c.member_pays_fen[row])
    bad = [
        tampered(c, ("share_fen", row, 1)),
        tampered(c, ("share_fen", row, -1), *pays_more(row, -min(pays, 1))),
        tampered(c, *pays_more(row, share + 1 - pays)),
        tampered(c, *pays_more(row, -pays - 1)),
    ]
    # one member_pays_fen + 1, on a member who pays their whole share
    full = np.flatnonzero(c.member_pays_fen == c.share_fen)
    if full.size:
        j = int(full[data.draw(st.integers(0, full.size - 1), label="full payer")])
        bad.append(tampered(c, *pays_more(j, 1)))
    # one member's extra fen moved onto another who already owes one: base + 2 and base
    extra = np.flatnonzero(c.share_fen == s.plan.base_share_fen + 1)
    if extra.size >= 2:
        bad.append(tampered(c, ("share_fen", int(extra[0]), 1),
                            ("share_fen", int(extra[1]), -1)))
    # a member at the annual cap charged one fen more (still within their share)
    cap = s.plan.annual_cap_fen
    if cap is not None:
        at_cap = np.flatnonzero((c.paid_in_year_fen == cap) & (c.member_pays_fen < c.share_fen))
        if at_cap.size:
            bad.append(tampered(c, *pays_more(int(at_cap[0]), 1)))
    for charges in bad:
        with pytest.raises(MoneyEquationBroken):
            check_shard(charges)


@pytest.mark.domain
def test_one_fen_more_on_a_member_paying_in_full_is_refused() -> None:
    """2020 rules (no caps, no window): everybody pays their whole share, so one fen more on
    anybody's debit is caught."""
    uncapped = RULEBOOK.version("2020-01-01").plan("critical_illness")
    sharers = tuple(Sharer(f"m{i}", f"p{i // 2}", date(2019, 6, 1)) for i in range(7))
    period = Period("2020-02-14/critical_illness", "2020-01-01", date(2020, 2, 14), uncapped,
                    (ApprovedCase("case-00", "claimant-00", 100),), sharers)
    for tasks in TASK_COUNTS:
        _, shards = price(period, tasks)
        assert sum(s.charges.member_debits_fen for s in shards) == 108
        for s in shards:
            for row in range(len(s.roll.member_ids)):
                with pytest.raises(MoneyEquationBroken, match="outside 0..share"):
                    check_shard(tampered(s.charges, *pays_more(row, 1)))


@pytest.mark.domain
def test_check_shard_catches_a_charge_inside_the_share_but_outside_the_window_or_case_cap(
) -> None:
    """Under the 2018-10-16 rules on 2019-01-14, a member who joined in the operator-funded
    window pays nothing and the others at most 10 fen per case: one fen more for either is
    refused, though it stays within the member's share."""
    plan = load_rulebook().version("2018-10-16").plan("critical_illness")
    period_id = "2019-01-14/critical_illness"
    payers = ("in-window", "after-window")
    counts: dict[int, int] = {}
    for p in payers:
        counts[bucket_of(p)] = counts.get(bucket_of(p), 0) + 1
    period = plan_period(period_id, 1_100, counts, tasks=1, cases=1, plan=plan,
                         sharing_date=date(2019, 1, 14))
    rows = sorted((bucket_of(p), p, j) for p, j in zip(
        payers, (date(2018, 11, 1), date(2019, 1, 5)), strict=True))
    roll = RollSlice([m for _, m, _ in rows], [m for _, m, _ in rows],
                     np.array([b for b, _, _ in rows], dtype=np.int64),
                     np.array([j.toordinal() for _, _, j in rows], dtype=np.int64),
                     np.zeros(2, dtype=np.int64))
    charges = price_shard(period.shards[0], roll)
    pays = dict(zip(roll.member_ids, charges.member_pays_fen.tolist(), strict=True))
    assert pays == {"in-window": 0, "after-window": 10}
    for member in roll.member_ids:
        tampered = charges.member_pays_fen.copy()
        tampered[roll.member_ids.index(member)] += 1
        with pytest.raises(MoneyEquationBroken):
            check_shard(dataclasses.replace(charges, member_pays_fen=tampered,
                                            paid_in_year_fen=charges.paid_in_year_fen + 0))
