"""A sharing period priced in shards: the coordinator's plan and one worker's arithmetic.

The coordinator counts the roll per bucket, fixes the base share and every bucket's extra
fen (``sharing.bucket_extras``) and cuts the buckets into contiguous ranges, one shard
task each. A worker prices its range with numpy, checks its own books and emits only if
they balance. Since the shard plan adds up to the period's total before any shard runs,
shards that each balance make a period that balances; the coordinator adds the shard
totals up again before it publishes the notice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from mutualaid.rulebook import PlanRules

from .sharing import ROLL_BUCKETS, MoneyEquationBroken, bucket_extras


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """Everything a worker needs to price one range of buckets."""

    period_id: str
    task_no: int
    bucket_lo: int
    bucket_hi: int  # exclusive
    members: tuple[int, ...]  # per bucket of the range
    extras: tuple[int, ...]  # per bucket of the range
    base_share_fen: int
    cases: int
    annual_cap_fen: int | None
    per_case_cap_fen: int | None
    operator_pays_joined_before: date | None

    @property
    def member_count(self) -> int:
        return sum(self.members)

    @property
    def shares_fen(self) -> int:
        return self.base_share_fen * self.member_count + sum(self.extras)


@dataclass(frozen=True, slots=True)
class PeriodPlan:
    total_fen: int
    members: int
    base_share_fen: int
    paying_one_fen_more: int
    shards: tuple[ShardPlan, ...]


def operator_pays_joined_before(plan: PlanRules, sharing_date: date) -> date | None:
    """``plan.operator_pays`` as one cut-off for this sharing date: members who joined
    before it pay nothing."""
    open_windows = [w.joined_before for w in plan.operator_funded_windows
                    if sharing_date < w.periods_before]
    return max(open_windows, default=None)


def plan_period(period_id: str, total_fen: int, counts: Mapping[int, int], *, tasks: int,
                cases: int, plan: PlanRules, sharing_date: date) -> PeriodPlan:
    """Split a period into ``tasks`` ranges of buckets and fix every bucket's figures."""
    if tasks < 1:
        raise ValueError("a run needs at least one shard")
    n = sum(counts.values())
    base, extra = divmod(total_fen, n) if n else (0, 0)
    extras = bucket_extras(extra, counts, period_id) if n else {}
    width = -(-ROLL_BUCKETS // tasks)
    cutoff = operator_pays_joined_before(plan, sharing_date)
    shards = []
    for task_no, lo in enumerate(range(0, ROLL_BUCKETS, width)):
        hi = min(lo + width, ROLL_BUCKETS)
        shards.append(ShardPlan(
            period_id=period_id, task_no=task_no, bucket_lo=lo, bucket_hi=hi,
            members=tuple(counts.get(b, 0) for b in range(lo, hi)),
            extras=tuple(extras.get(b, 0) for b in range(lo, hi)), base_share_fen=base,
            cases=cases, annual_cap_fen=plan.annual_cap_fen,
            per_case_cap_fen=plan.per_case_cap_fen, operator_pays_joined_before=cutoff))
    result = PeriodPlan(total_fen, n, base, extra, tuple(shards))
    planned = sum(s.shares_fen for s in shards)
    if n and planned != total_fen:
        raise MoneyEquationBroken(f"{period_id}: the shards share {planned}, not {total_fen}")
    return result


@dataclass(frozen=True, slots=True)
class RollSlice:
    """One shard's members, ordered by bucket and then member id."""

    member_ids: Sequence[str]
    payer_ids: Sequence[str]
    buckets: np.ndarray  # int
    joined_on: np.ndarray  # proleptic ordinals (date.toordinal)
    paid_before_fen: np.ndarray  # int64, paid in the plan earlier this year


@dataclass(frozen=True, slots=True)
class ShardCharges:
    plan: ShardPlan
    share_fen: np.ndarray
    member_pays_fen: np.ndarray
    paid_in_year_fen: np.ndarray
    #: The members' join dates (ordinals), kept to check the operator-funded window.
    joined_on: np.ndarray | None = None

    @property
    def shares_fen(self) -> int:
        return int(self.share_fen.sum())

    @property
    def member_debits_fen(self) -> int:
        return int(self.member_pays_fen.sum())

    @property
    def subsidy_fen(self) -> int:
        return int((self.share_fen - self.member_pays_fen).sum())

    @property
    def paying_one_fen_more(self) -> int:
        return int((self.share_fen != self.plan.base_share_fen).sum())


class RollChanged(RuntimeError):
    """The roll read for a shard is not the one counted when the run started."""


def price_shard(plan: ShardPlan, roll: RollSlice) -> ShardCharges:
    n = len(roll.member_ids)
    width = plan.bucket_hi - plan.bucket_lo
    offsets = np.asarray(roll.buckets, dtype=np.int64) - plan.bucket_lo
    if n and (offsets.min() < 0 or offsets.max() >= width or np.any(np.diff(offsets) < 0)):
        raise RollChanged(f"{plan.period_id} shard {plan.task_no}: rows outside the range "
                          "or out of bucket order")
    counts = np.bincount(offsets, minlength=width) if n else np.zeros(width, dtype=np.int64)
    if tuple(int(c) for c in counts) != plan.members:
        raise RollChanged(f"{plan.period_id} shard {plan.task_no}: the roll has "
                          f"{n} members, the run counted {plan.member_count}")
    share = np.full(n, plan.base_share_fen, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)))
    key = plan.period_id.encode()[:64]
    for i, extra in enumerate(plan.extras):
        if not extra:
            continue
        lo, hi = int(starts[i]), int(starts[i + 1])
        if extra == hi - lo:
            share[lo:hi] += 1
            continue
        digests = np.frombuffer(b"".join(
            hashlib.blake2b(m.encode(), key=key, digest_size=16).digest()
            for m in roll.member_ids[lo:hi]), dtype=">u8").reshape(-1, 2)
        # Primary key last: digest high half, low half, then row order (= member id order).
        order = np.lexsort((np.arange(hi - lo), digests[:, 1], digests[:, 0]))
        share[lo + order[:extra]] += 1
    pays = share.copy()
    if plan.operator_pays_joined_before is not None:
        pays[np.asarray(roll.joined_on) < plan.operator_pays_joined_before.toordinal()] = 0
    if plan.per_case_cap_fen is not None:
        np.minimum(pays, plan.per_case_cap_fen * plan.cases, out=pays)
    paid_before = np.asarray(roll.paid_before_fen, dtype=np.int64)
    if plan.annual_cap_fen is not None:
        np.minimum(pays, np.maximum(0, plan.annual_cap_fen - paid_before), out=pays)
    charges = ShardCharges(plan, share, pays, paid_before + pays, np.asarray(roll.joined_on))
    check_shard(charges)
    return charges


def check_shard(c: ShardCharges) -> None:
    """The shard's books, checked against its plan before anything leaves the worker."""
    p = c.plan
    where = f"{p.period_id} shard {p.task_no}"
    if c.shares_fen != p.shares_fen:
        raise MoneyEquationBroken(f"{where}: shares {c.shares_fen} != planned {p.shares_fen}")
    extra = c.share_fen - p.base_share_fen
    if np.any((extra < 0) | (extra > 1)) or int(extra.sum()) != sum(p.extras):
        raise MoneyEquationBroken(f"{where}: shares are not equal to the fen")
    if np.any(c.member_pays_fen < 0) or np.any(c.member_pays_fen > c.share_fen):
        raise MoneyEquationBroken(f"{where}: a member pays outside 0..share")
    if p.per_case_cap_fen is not None and np.any(
            c.member_pays_fen > p.per_case_cap_fen * p.cases):
        raise MoneyEquationBroken(f"{where}: a member pays beyond the per-case cap")
    if (p.operator_pays_joined_before is not None and c.joined_on is not None and np.any(
            c.member_pays_fen[c.joined_on < p.operator_pays_joined_before.toordinal()])):
        raise MoneyEquationBroken(f"{where}: a member in the operator-funded window pays")
    if p.annual_cap_fen is not None and np.any(c.paid_in_year_fen > np.maximum(
            p.annual_cap_fen, c.paid_in_year_fen - c.member_pays_fen)):
        raise MoneyEquationBroken(f"{where}: a member pays beyond the annual cap")
    if c.member_debits_fen + c.subsidy_fen != c.shares_fen:
        raise MoneyEquationBroken(f"{where}: debits + subsidy != shares")


def debits(roll: RollSlice, pays: Sequence[int]
           ) -> dict[int, list[tuple[str, list[tuple[str, int]]]]]:
    """Per bucket, each payer with the members they pay for and what each pays (members
    paying nothing left out; payers in first-seen order, i.e. by their first member id)."""
    by_payer: dict[str, tuple[int, list[tuple[str, int]]]] = {}
    for bucket, payer, member, amount in zip(roll.buckets.tolist(), roll.payer_ids,
                                             roll.member_ids, pays, strict=True):
        if amount:
            if (entry := by_payer.get(payer)) is None:
                entry = by_payer[payer] = (bucket, [])
            entry[1].append((member, amount))
    out: dict[int, list[tuple[str, list[tuple[str, int]]]]] = {}
    for payer, (bucket, lines) in by_payer.items():
        out.setdefault(bucket, []).append((payer, lines))
    return out
