"""Payment instructions of a period: one debit per payer, one credit per approved case.

An instruction id names its period, kind and party (``2020-06-14/critical_illness/debit/
p-1``): a re-run of a period yields the same ids and amounts, the payment system can
de-duplicate on them, and billing finds what a payment result is for without storing every
debit (its amount is the sum of the payer's charges in the period)."""

from __future__ import annotations

from collections.abc import Sequence

from mutualaid.contracts.billing import InstructionLine, PaymentInstruction

from .sharing import ApprovedCase, MoneyEquationBroken, PeriodResult, bucket_of, \
    debits_by_payer

KINDS = ("debit", "credit")


def instruction_id(period_id: str, kind: str, party: str) -> str:
    return f"{period_id}/{kind}/{party}"


def parse_instruction_id(value: str) -> tuple[str, str, str] | None:
    """``(period_id, kind, party)``, or ``None`` for an id billing never issued. Period ids
    are ``<date>/<plan>``, so the party is everything after the third slash."""
    parts = value.split("/", 3)
    if len(parts) != 4 or parts[2] not in KINDS or not parts[3]:
        return None
    return f"{parts[0]}/{parts[1]}", parts[2], parts[3]


def batch_key(bucket: int) -> str:
    """The Kafka key of an instruction batch: the payer's bucket, so a payer's instructions
    of every period land on one partition, in order."""
    return f"{bucket:04d}"


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


def batches(instructions: Sequence[PaymentInstruction], *, size: int
            ) -> list[tuple[str, list[PaymentInstruction]]]:
    """Group by the account's bucket, then cut into batches of at most ``size``."""
    by_bucket: dict[int, list[PaymentInstruction]] = {}
    for ins in instructions:
        by_bucket.setdefault(bucket_of(ins.account_id), []).append(ins)
    out: list[tuple[str, list[PaymentInstruction]]] = []
    for bucket in sorted(by_bucket):
        items = by_bucket[bucket]
        out += [(batch_key(bucket), items[i:i + size]) for i in range(0, len(items), size)]
    return out
