"""billing.* commands and events, payment instructions and results (SPEC §7, §8)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from . import topics
from .base import Command, Event, Id, NonNegativeFen
from .common import PlanId


class RunSharingPeriod(Command):
    TYPE: ClassVar[str] = "billing.RunSharingPeriod"
    SUBJECT: ClassVar[str] = "sharing_date"

    sharing_date: date
    plans: tuple[PlanId, ...] | None = None  # None: every plan
    dry_run: bool = False


class SettleArrears(Command):
    """A payer pays their outstanding debits later: the arrears stop counting."""

    TYPE: ClassVar[str] = "billing.SettleArrears"
    SUBJECT: ClassVar[str] = "payer_id"

    payer_id: Id
    amount_fen: NonNegativeFen
    settled_on: date


class SharingAnnounced(Event):
    """The public sharing notice of one plan for one sharing date."""

    TYPE: ClassVar[str] = "billing.SharingAnnounced"
    SUBJECT: ClassVar[str] = "period_id"

    period_id: str
    plan: PlanId
    sharing_date: date
    roll_date: date
    rule_version: str
    cases: int
    case_ids: tuple[str, ...]
    benefits_fen: NonNegativeFen
    fee_fen: NonNegativeFen
    total_fen: NonNegativeFen
    members_sharing: int
    base_share_fen: NonNegativeFen
    members_paying_one_fen_more: int
    member_debits_fen: NonNegativeFen
    subsidy_fen: NonNegativeFen
    dry_run: bool = False


class InstructionLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    amount_fen: NonNegativeFen


class PaymentInstruction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instruction_id: str
    kind: Literal["debit", "credit"]
    period_id: str
    #: The payer for a debit, the claimant member for a credit.
    account_id: str
    amount_fen: NonNegativeFen
    case_id: str | None = None
    lines: tuple[InstructionLine, ...] = ()


class PaymentInstructionBatch(Event):
    TYPE: ClassVar[str] = "billing.PaymentInstructionBatch"
    SUBJECT: ClassVar[str] = "shard"
    TOPIC: ClassVar[str | None] = topics.PAYMENT_INSTRUCTIONS

    period_id: str
    #: Payers are hashed to shards; keying batches by shard keeps one payer's
    #: instructions on one partition, in order.
    shard: str
    batch_no: int
    instructions: tuple[PaymentInstruction, ...]


class PlanTotals(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    plan: PlanId
    period_id: str
    benefits_fen: NonNegativeFen
    fee_fen: NonNegativeFen
    member_debits_fen: NonNegativeFen
    subsidy_fen: NonNegativeFen
    debit_instructions: int
    credit_instructions: int


class SharingPeriodCompleted(Event):
    TYPE: ClassVar[str] = "billing.SharingPeriodCompleted"
    SUBJECT: ClassVar[str] = "sharing_date"

    sharing_date: date
    plans: tuple[PlanTotals, ...]
    dry_run: bool = False


class PayerArrearsLimitReached(Event):
    TYPE: ClassVar[str] = "billing.PayerArrearsLimitReached"
    SUBJECT: ClassVar[str] = "payer_id"

    payer_id: Id
    failed_periods: tuple[str, ...]
    reached_on: date


class ArrearsSettled(Event):
    TYPE: ClassVar[str] = "billing.ArrearsSettled"
    SUBJECT: ClassVar[str] = "payer_id"

    payer_id: Id
    period_ids: tuple[str, ...]
    amount_fen: NonNegativeFen
    settled_on: date


class PaymentSucceeded(Event):
    TYPE: ClassVar[str] = "payments.PaymentSucceeded"
    SUBJECT: ClassVar[str] = "instruction_id"
    TOPIC: ClassVar[str | None] = topics.PAYMENT_RESULTS

    instruction_id: Id
    amount_fen: NonNegativeFen
    settled_at: AwareDatetime


class PaymentFailed(Event):
    TYPE: ClassVar[str] = "payments.PaymentFailed"
    SUBJECT: ClassVar[str] = "instruction_id"
    TOPIC: ClassVar[str | None] = topics.PAYMENT_RESULTS

    instruction_id: Id
    reason: str
    failed_at: AwareDatetime
