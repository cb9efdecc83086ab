"""claims.* commands and events (SPEC §4, §8)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .base import Command, Event, Id, NonNegativeFen
from .common import Document, PlanId, Text

Name = Annotated[str, Field(min_length=1, max_length=200)]


class FileClaim(Command):
    TYPE: ClassVar[str] = "claims.FileClaim"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    illness_code: Annotated[str, Field(min_length=1, max_length=64)]
    diagnosed_on: date
    suspected_on: date | None = None
    is_accident: bool = False
    hospital: Name
    documents: tuple[Document, ...] = ()


class StartInvestigation(Command):
    TYPE: ClassVar[str] = "claims.StartInvestigation"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    investigator: Name
    started_on: date


class RecordInvestigation(Command):
    TYPE: ClassVar[str] = "claims.RecordInvestigation"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    investigator: Name
    verified: bool
    summary: Text
    documents: tuple[Document, ...] = ()
    investigated_on: date


class ReviewClaim(Command):
    TYPE: ClassVar[str] = "claims.ReviewClaim"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    stage: Literal["review", "final"]
    reviewer: Name
    approved: bool
    reason_code: str | None = None
    note: Text | None = None
    reviewed_on: date


class WithdrawClaim(Command):
    TYPE: ClassVar[str] = "claims.WithdrawClaim"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    reason: Text | None = None
    withdrawn_on: date


class AppealClaim(Command):
    """The claimant appeals a rejection at review: the case goes to the member jury."""

    TYPE: ClassVar[str] = "claims.AppealClaim"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    reason: Text
    appealed_on: date


class ReportCaseHistory(Command):
    """Ask for a case's audit trail: every decision with who, when, why and rule version."""

    TYPE: ClassVar[str] = "claims.ReportCaseHistory"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id


class ClaimFiled(Event):
    TYPE: ClassVar[str] = "claims.ClaimFiled"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    payer_id: Id
    plan: PlanId
    illness_code: str
    diagnosed_on: date
    is_accident: bool
    hospital: str
    age_at_diagnosis: int
    benefit_fen: NonNegativeFen
    rule_version: str
    documents: tuple[Document, ...] = ()


class InvestigationStarted(Event):
    TYPE: ClassVar[str] = "claims.InvestigationStarted"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    investigator: str
    started_on: date


class ClaimInvestigated(Event):
    TYPE: ClassVar[str] = "claims.ClaimInvestigated"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    investigator: str
    verified: bool
    summary: str
    documents: tuple[Document, ...] = ()
    investigated_on: date


class ClaimReviewed(Event):
    TYPE: ClassVar[str] = "claims.ClaimReviewed"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    stage: Literal["review", "final"]
    reviewer: str
    approved: bool
    reason_code: str | None = None
    note: str | None = None
    reviewed_on: date
    rule_version: str


class CaseReadyForPublicity(Event):
    TYPE: ClassVar[str] = "claims.CaseReadyForPublicity"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    payer_id: Id
    plan: PlanId
    masked_name: str
    masked_national_id: str
    age_band: str
    illness_code: str
    hospital: str
    benefit_fen: NonNegativeFen
    investigation_summary: str
    ready_on: date


class ClaimWithdrawn(Event):
    TYPE: ClassVar[str] = "claims.ClaimWithdrawn"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    withdrawn_on: date


class ClaimAppealed(Event):
    TYPE: ClassVar[str] = "claims.ClaimAppealed"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    payer_id: Id
    plan: PlanId
    reason: str
    appealed_on: date


class CaseApproved(Event):
    TYPE: ClassVar[str] = "claims.CaseApproved"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    payer_id: Id
    plan: PlanId
    benefit_fen: NonNegativeFen
    rule_version: str
    diagnosed_on: date
    approved_on: date


class CaseRejected(Event):
    TYPE: ClassVar[str] = "claims.CaseRejected"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    member_id: Id
    reason_code: str
    message: str
    rejected_on: date


class CaseHistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    recorded_at: AwareDatetime
    detail: dict[str, Any]


class CaseHistoryReported(Event):
    TYPE: ClassVar[str] = "claims.CaseHistoryReported"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    state: str
    rule_version: str
    entries: tuple[CaseHistoryEntry, ...]
