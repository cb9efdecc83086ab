"""Panel draws (SPEC §6, ``panel`` mode): random, yet anyone can re-derive every panel.

The draw of round ``r`` of case ``c`` (rounds are numbered from 1 per case, on across the
case's sittings, so no two draws of a case share a seed):

1. ``seed = sha256(f"{c}:{r}".encode("utf-8")).hexdigest()`` (64 hex digits, published in
   ``PanelDrawn.seed``).
2. The eligible jurors: qualified (exam >= 80 while an active member of 30 days or more,
   aged 18 or more, no fraud record) and still active; not the claimant, not a member
   paid for by the claimant's payer (nor that payer), not an objector of the case, and not
   on any earlier panel of the case.
3. They are ordered by ``blake2b(member_id.encode("utf-8"), key=bytes.fromhex(seed),
   digest_size=16).digest()`` (ties, which need a 128-bit collision, by member id); the
   first ``n`` of that order are seated.
4. ``n``: the panel of the round is the voters kept from the previous round (their votes
   stand) plus ``n`` new jurors, at most ``panel_size`` in all and of odd size, so a full
   panel cannot tie. ``n`` is the largest such number the eligible jurors allow, and at
   least 1; when no ``n`` fits (nobody eligible, or one juror where an even number is
   needed) nothing is drawn and the panel stays as it is until the next close.

The order does not depend on the order the jurors are listed in, only on the set, the
case and the round; a keyed hash rather than a seeded shuffle, so the order of any one
juror can be checked without the others.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from mutualaid.contracts.jury import PanelDrawn

from .model import Candidate, JuryCase


def seed(case_id: str, draw_round: int) -> str:
    return hashlib.sha256(f"{case_id}:{draw_round}".encode()).hexdigest()


def order(member_ids: Iterable[str], seed_hex: str, first: int | None = None) -> list[str]:
    """The members in draw order for that seed (only the ``first`` so many when given: a
    partial selection, not a sort of every eligible juror)."""
    key = bytes.fromhex(seed_hex)

    def rank(member_id: str) -> tuple[bytes, str]:
        return hashlib.blake2b(member_id.encode(), key=key, digest_size=16).digest(), member_id

    unique = set(member_ids)
    return sorted(unique, key=rank) if first is None else heapq.nsmallest(first, unique, rank)


def excluded(case: JuryCase, juror: Candidate, objectors: Collection[str]) -> bool:
    """Never on this case: the claimant, their payer's members (the payer too), objectors."""
    return (juror.member_id in (case.claimant_id, case.claimant_payer_id)
            or juror.payer_id == case.claimant_payer_id or juror.member_id in objectors)


def eligible(case: JuryCase, jurors: Iterable[Candidate], objectors: Collection[str],
             ever_seated: Collection[str]) -> list[str]:
    """Qualified jurors (the caller passes only those) who may be drawn for this case."""
    return [j.member_id for j in jurors if j.active and not excluded(case, j, objectors)
            and j.member_id not in ever_seated]


def new_seats(kept: int, panel_size: int, available: int) -> int:
    """How many to draw next to ``kept`` voters: the most that keeps the panel odd and
    within ``panel_size``; 0 when no draw fits."""
    n = min(available, panel_size - kept)
    if (kept + n) % 2 == 0:
        n -= 1
    return max(n, 0)


@dataclass(frozen=True, slots=True)
class Draw:
    case: JuryCase  # seats and round updated
    event: PanelDrawn
    seated: tuple[str, ...]  # drawn in this round
    released: tuple[str, ...]  # left the panel without voting


def draw(case: JuryCase, eligible_ids: Iterable[str], *, panel: Collection[str] = (),
         voters: Collection[str] = ()) -> Draw | None:
    """The next round: keep the voters of the current ``panel``, replace the others with
    jurors drawn from ``eligible_ids``. ``None`` when nobody can be drawn: the case (and a
    current panel) waits for the next close."""
    kept = tuple(sorted(j for j in panel if j in voters))
    candidates = [j for j in eligible_ids if j not in panel]
    n = new_seats(len(kept), case.panel_size, len(candidates))
    if n == 0:
        return None
    draw_round = case.draw_round + 1
    seed_hex = seed(case.case_id, draw_round)
    seated = tuple(order(candidates, seed_hex, n))
    event = PanelDrawn(case_id=case.case_id, draw_round=draw_round, seed=seed_hex,
                       juror_ids=(*kept, *seated), kept_juror_ids=kept,
                       origin=case.origin,  # type: ignore[arg-type]
                       voting_closes_at=case.closes_at)
    return Draw(replace(case, draw_round=draw_round, seats=len(kept) + n), event, seated,
                tuple(j for j in panel if j not in voters))
