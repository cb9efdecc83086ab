"""billing.* commands and events, payment instructions and results (SPEC §7, §8)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from . import topics
from .base import Command, Event, Id, NonNegativeFen
from .common import PlanId


class RunSharingPeriod(Command):
    TYPE: ClassVar[str] = "billing.RunSharingPeriod"
    SUBJECT: ClassVar[str] = "sharing_date"

    sharing_date: date
    plans: tuple[PlanId, ...] | None = None  # None: every plan
    dry_run: bool = False
    #: A dry run may be priced under a draft rulebook (the YAML text of a rulebook file):
    #: what a rule change would cost members. Refused without ``dry_run``.
    draft_rulebook: str | None = Field(None, max_length=256 * 1024)


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
    #: The payers' bucket (0000-1023; a hash of the payer id, see docs/billing.md). Batches
    #: are keyed by it, so one payer's instructions stay on one partition, in order.
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


#: Instruction ids name the period, kind and party, so they can be longer than other ids.
InstructionId = Annotated[str, Field(min_length=1, max_length=320)]


class PaymentSucceeded(Event):
    TYPE: ClassVar[str] = "payments.PaymentSucceeded"
    SUBJECT: ClassVar[str] = "instruction_id"
    TOPIC: ClassVar[str | None] = topics.PAYMENT_RESULTS

    instruction_id: InstructionId
    amount_fen: NonNegativeFen
    settled_at: AwareDatetime


class PaymentFailed(Event):
    TYPE: ClassVar[str] = "payments.PaymentFailed"
    SUBJECT: ClassVar[str] = "instruction_id"
    TOPIC: ClassVar[str | None] = topics.PAYMENT_RESULTS

    instruction_id: InstructionId
    reason: str
    failed_at: AwareDatetime


class SharingRunStarted(Event):
    """A sharing run was planned: its periods, their rolls and shards. The notice and the
    instructions follow as the billing workers finish the shards."""

    TYPE: ClassVar[str] = "billing.SharingRunStarted"
    SUBJECT: ClassVar[str] = "run_id"

    run_id: str
    sharing_date: date
    period_ids: tuple[str, ...]
    members_sharing: int
    shards: int
    dry_run: bool = False


class SharingRunFailed(Event):
    """A period whose books did not balance: nothing more is emitted for it; operators
    investigate and re-run."""

    TYPE: ClassVar[str] = "billing.SharingRunFailed"
    SUBJECT: ClassVar[str] = "period_id"

    run_id: str
    period_id: str
    reason: str


class Cap(BaseModel):
    """A cap of the rulebook in force (absent: no cap)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_fen: NonNegativeFen


class ShardAssigned(Event):
    """One shard of a period's roll (a range of payer buckets) for a billing worker: every
    figure the worker needs, so that it reads only the roll and writes only its shard."""

    TYPE: ClassVar[str] = "billing.ShardAssigned"
    SUBJECT: ClassVar[str] = "shard_id"
    TOPIC: ClassVar[str | None] = topics.SHARD_TASKS

    #: ``<period_id>#<task_no>``: the Kafka key, so a period's shards spread over the
    #: topic's partitions and so over the workers.
    shard_id: str
    run_id: str
    period_id: str
    plan: PlanId
    sharing_date: date
    roll_date: date
    #: The roll as it stood when the run started (rows recorded up to this sequence).
    roll_seq: int
    #: The plan's previous period of the same year: what members paid so far (annual cap).
    previous_period_id: str | None
    task_no: int
    bucket_lo: int
    bucket_hi: int  # exclusive
    #: Members on the roll per bucket of the range, as counted when the run started.
    members: tuple[int, ...]
    #: Per bucket, how many of its members pay the extra fen.
    extras: tuple[int, ...]
    base_share_fen: NonNegativeFen
    cases: int
    annual_cap: Cap | None
    per_case_cap: Cap | None
    #: Members who joined before this date pay nothing this period (operator-funded window).
    operator_pays_joined_before: date | None
    dry_run: bool = False


class ShardCompleted(Event):
    TYPE: ClassVar[str] = "billing.ShardCompleted"
    SUBJECT: ClassVar[str] = "period_id"
    TOPIC: ClassVar[str | None] = topics.SHARD_RESULTS

    run_id: str
    period_id: str
    task_no: int
    ok: bool
    error: str | None = None
    members: int = 0
    shares_fen: NonNegativeFen = 0
    paying_one_fen_more: int = 0
    member_debits_fen: NonNegativeFen = 0
    subsidy_fen: NonNegativeFen = 0
    debit_instructions: int = 0
