"""The money rule of SPEC §1, exact to the fen.

Per period and plan: ``total = benefits + fee`` where the fee is the rulebook rate of the
benefits rounded half up. Every member on the roll owes ``total // n``; ``total % n``
members owe one fen more, chosen in two deterministic steps so that shards of the roll can
be priced apart (docs/billing.md):

1. The roll is split into ``ROLL_BUCKETS`` buckets by payer (``bucket_of``: the first four
   bytes of MD5(payer id), low 10 bits), so a payer's members share a bucket. The
   ``total % n`` extra fen are shared out between buckets by largest remainder: bucket
   ``b`` with ``n_b`` members gets ``floor(e * n_b / n)``, and the ones left over go to the
   buckets with the largest ``e * n_b mod n``; ties in the order of
   ``BLAKE2b(bucket as 2 bytes big-endian, key=period_id)`` (``bucket_key``).
2. Within a bucket, members are ordered by ``BLAKE2b(member_id, key=period_id)`` (16-byte
   digest, ties broken by member id): the first ``e_b`` pay the extra fen. The order is
   reproducible for a period and differs from one period to the next.

Then, per member:
operator-funded windows (the operator pays the whole share), the per-case cap and the
annual cap (the member pays up to the cap). Whatever members do not pay is the operator's
subsidy, so ``sum(member debits) + subsidy == benefits + fee`` by construction, and
``reconcile`` checks it again before anything leaves billing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from mutualaid.rulebook import PlanRules


class MoneyEquationBroken(AssertionError):
    """The books do not balance: the run must stop and emit nothing."""


@dataclass(frozen=True, slots=True)
class Sharer:
    member_id: str
    payer_id: str
    joined_on: date
    paid_this_year_fen: int = 0


@dataclass(frozen=True, slots=True)
class ApprovedCase:
    case_id: str
    member_id: str
    benefit_fen: int


@dataclass(frozen=True, slots=True)
class Charge:
    member_id: str
    payer_id: str
    share_fen: int
    member_pays_fen: int

    @property
    def operator_pays_fen(self) -> int:
        return self.share_fen - self.member_pays_fen


@dataclass(frozen=True, slots=True)
class PeriodResult:
    period_id: str
    benefits_fen: int
    fee_fen: int
    base_share_fen: int
    members_paying_one_fen_more: int
    charges: tuple[Charge, ...]

    @property
    def total_fen(self) -> int:
        return self.benefits_fen + self.fee_fen

    @property
    def member_debits_fen(self) -> int:
        return sum(c.member_pays_fen for c in self.charges)

    @property
    def subsidy_fen(self) -> int:
        # Summed from what each member did not pay, not derived from the total, so that
        # reconcile compares two independent sums.
        return sum(c.operator_pays_fen for c in self.charges) if self.charges else \
            self.total_fen


#: Fixed by the schema (the roll stores each payer's bucket): shards are ranges of buckets,
#: so how many shards or workers a run uses never changes anyone's charge.
ROLL_BUCKETS = 1024


def bucket_of(payer_id: str) -> int:
    """The payer's bucket; the roll's migration computes the same in SQL."""
    return int.from_bytes(hashlib.md5(payer_id.encode()).digest()[:4], "big") & (
        ROLL_BUCKETS - 1)


def order_key(period_id: str, member_id: str) -> tuple[bytes, str]:
    digest = hashlib.blake2b(member_id.encode(), key=period_id.encode()[:64], digest_size=16)
    return digest.digest(), member_id


def bucket_key(period_id: str, bucket: int) -> bytes:
    """Breaks ties between buckets of equal remainder, differently each period: on a small
    roll most buckets tie, and a fixed order would give the same members the extra fen in
    every period."""
    return hashlib.blake2b(bucket.to_bytes(2, "big"), key=period_id.encode()[:64],
                           digest_size=8).digest()


def bucket_extras(extra: int, counts: Mapping[int, int], period_id: str) -> dict[int, int]:
    """How many of each bucket's members pay the extra fen: ``extra`` shared out by largest
    remainder of ``extra * n_b / n``, ties in the period's order of buckets."""
    n = sum(counts.values())
    if not 0 <= extra < max(n, 1):
        raise ValueError("the extra fen must be fewer than the members sharing")
    if extra == 0:
        return dict.fromkeys(counts, 0)
    out = {b: extra * c // n for b, c in counts.items()}
    left = extra - sum(out.values())
    ranked = sorted(counts, key=lambda b: (-(extra * counts[b] % n), bucket_key(period_id, b),
                                           b))
    for b in ranked[:left]:
        out[b] += 1
    return out


def split_equally(total_fen: int, members: Sequence[tuple[str, str]], period_id: str
                  ) -> dict[str, int]:
    """Each member's share before caps, for ``(member_id, payer_id)`` pairs: equal to the
    fen, the extra fen by bucket and then by the period's order within the bucket."""
    if total_fen < 0:
        raise ValueError("a total to share cannot be negative")
    n = len(members)
    if n == 0:
        return {}
    if len({m for m, _ in members}) != n:
        raise ValueError("a member appears twice among those sharing")
    base, extra = divmod(total_fen, n)
    by_bucket: dict[int, list[str]] = {}
    for member_id, payer_id in members:
        by_bucket.setdefault(bucket_of(payer_id), []).append(member_id)
    extras = bucket_extras(extra, {b: len(ids) for b, ids in by_bucket.items()}, period_id)
    shares = {m: base for m, _ in members}
    for bucket, ids in by_bucket.items():
        for member_id in sorted(ids, key=lambda m: order_key(period_id, m))[:extras[bucket]]:
            shares[member_id] = base + 1
    return shares


def member_pays(share: int, sharer: Sharer, *, plan: PlanRules, sharing_date: date,
                cases: int) -> int:
    if plan.operator_pays(sharer.joined_on, sharing_date):
        return 0
    pays = share
    if plan.per_case_cap_fen is not None:
        pays = min(pays, plan.per_case_cap_fen * cases)
    if plan.annual_cap_fen is not None:
        pays = min(pays, max(0, plan.annual_cap_fen - sharer.paid_this_year_fen))
    return pays


def share_period(period_id: str, sharing_date: date, plan: PlanRules,
                 cases: Sequence[ApprovedCase], sharers: Sequence[Sharer]) -> PeriodResult:
    if len({s.member_id for s in sharers}) != len(sharers):
        raise ValueError("a member appears twice on the roll")
    if len({c.case_id for c in cases}) != len(cases):
        raise ValueError("a case appears twice in one period")
    benefits = sum(c.benefit_fen for c in cases)
    fee = plan.management_fee_fen(benefits)
    total = benefits + fee
    shares = split_equally(total, [(s.member_id, s.payer_id) for s in sharers], period_id)
    n = len(sharers)
    charges = tuple(
        Charge(s.member_id, s.payer_id, shares[s.member_id],
               member_pays(shares[s.member_id], s, plan=plan, sharing_date=sharing_date,
                           cases=len(cases)))
        for s in sharers)
    result = PeriodResult(period_id, benefits, fee, total // n if n else 0,
                          total % n if n else 0, charges)
    reconcile(result)
    return result


def reconcile(result: PeriodResult) -> None:
    """Checks the result against the rule itself, independently of how it was computed."""
    shares = [c.share_fen for c in result.charges]
    if shares and sum(shares) != result.total_fen:
        raise MoneyEquationBroken(f"{result.period_id}: shares {sum(shares)} != total "
                                  f"{result.total_fen}")
    if shares:
        base, extra = divmod(result.total_fen, len(shares))
        if (set(shares) - {base, base + 1} or shares.count(base + 1) != extra
                or (result.base_share_fen, result.members_paying_one_fen_more) != (base, extra)):
            raise MoneyEquationBroken(f"{result.period_id}: shares are not equal to the fen")
    if any(not 0 <= c.member_pays_fen <= c.share_fen for c in result.charges):
        raise MoneyEquationBroken(f"{result.period_id}: a member pays outside 0..share")
    if result.member_debits_fen + result.subsidy_fen != result.benefits_fen + result.fee_fen:
        raise MoneyEquationBroken(f"{result.period_id}: debits + subsidy != benefits + fee")


def debits_by_payer(charges: Iterable[Charge]) -> dict[str, list[Charge]]:
    by_payer: dict[str, list[Charge]] = {}
    for c in charges:
        if c.member_pays_fen:
            by_payer.setdefault(c.payer_id, []).append(c)
    return by_payer
