"""Payment instructions of a period: one debit per payer, one credit per approved case.

Instruction ids derive from the period and the payer (or case), so a re-run of a period
yields the same ids and amounts and the payment system can de-duplicate on them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from mutualaid.contracts.billing import InstructionLine, PaymentInstruction

from .sharing import ApprovedCase, MoneyEquationBroken, PeriodResult, debits_by_payer

_INSTRUCTIONS = uuid.UUID("2b0f3f65-0a55-4c53-8f5e-3f8f6c1b7a42")


def instruction_id(period_id: str, kind: str, party: str) -> str:
    return str(uuid.uuid5(_INSTRUCTIONS, f"{period_id}/{kind}/{party}"))


def build(result: PeriodResult, cases: Sequence[ApprovedCase]) -> list[PaymentInstruction]:
    debits = [
        PaymentInstruction(
            instruction_id=instruction_id(result.period_id, "debit", payer), kind="debit",
            period_id=result.period_id, account_id=payer,
            amount_fen=sum(c.member_pays_fen for c in lines),
            lines=tuple(InstructionLine(member_id=c.member_id, amount_fen=c.member_pays_fen)
                        for c in lines))
        for payer, lines in sorted(debits_by_payer(result.charges).items())]
    credits = [
        PaymentInstruction(
            instruction_id=instruction_id(result.period_id, "credit", c.case_id), kind="credit",
            period_id=result.period_id, account_id=c.member_id, amount_fen=c.benefit_fen,
            case_id=c.case_id)
        for c in sorted(cases, key=lambda c: c.case_id)]
    if sum(d.amount_fen for d in debits) != result.member_debits_fen:
        raise MoneyEquationBroken(f"{result.period_id}: debit instructions do not add up")
    if sum(c.amount_fen for c in credits) != result.benefits_fen:
        raise MoneyEquationBroken(f"{result.period_id}: credits do not equal the benefits")
    return debits + credits


def shard_of(account_id: str, shards: int) -> int:
    digest = hashlib.blake2b(account_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def batches(instructions: Sequence[PaymentInstruction], *, shards: int, size: int
            ) -> list[tuple[str, list[PaymentInstruction]]]:
    """Group by shard (so one account's instructions share a key and a partition), then cut
    into batches of at most ``size``."""
    by_shard: dict[int, list[PaymentInstruction]] = {}
    for ins in instructions:
        by_shard.setdefault(shard_of(ins.account_id, shards), []).append(ins)
    out: list[tuple[str, list[PaymentInstruction]]] = []
    for shard in sorted(by_shard):
        items = by_shard[shard]
        out += [(f"{shard:05d}", items[i:i + size]) for i in range(0, len(items), size)]
    return out
