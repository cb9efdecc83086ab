"""publicity.* commands and events (SPEC §5, §8)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from .base import Command, Event, Id, NonNegativeFen
from .common import PlanId, Text


class OpenPublicityRound(Command):
    TYPE: ClassVar[str] = "publicity.OpenPublicityRound"
    SUBJECT: ClassVar[str] = "round_date"

    round_date: date


class ClosePublicityRound(Command):
    TYPE: ClassVar[str] = "publicity.ClosePublicityRound"
    SUBJECT: ClassVar[str] = "round_date"

    round_date: date
    #: The date the outcomes carry; default: the round's objection deadline. Refused when
    #: before the deadline (``WINDOW_STILL_OPEN``).
    closed_on: date | None = None


class FileObjection(Command):
    TYPE: ClassVar[str] = "publicity.FileObjection"
    SUBJECT: ClassVar[str] = "case_id"

    objection_id: Id
    case_id: Id
    member_id: Id
    reason: Text
    filed_on: date


class PublicityRoundOpened(Event):
    TYPE: ClassVar[str] = "publicity.PublicityRoundOpened"
    SUBJECT: ClassVar[str] = "round_date"

    round_date: date
    objection_deadline: date
    cases: int


class CasePublished(Event):
    TYPE: ClassVar[str] = "publicity.CasePublished"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    round_date: date
    plan: PlanId
    masked_name: str
    masked_national_id: str
    age_band: str
    illness_code: str
    hospital: str
    benefit_fen: NonNegativeFen
    investigation_summary: str
    objection_deadline: date


class ObjectionFiled(Event):
    TYPE: ClassVar[str] = "publicity.ObjectionFiled"
    SUBJECT: ClassVar[str] = "case_id"

    objection_id: Id
    case_id: Id
    member_id: Id
    reason: str
    filed_on: date


class PublicityPassed(Event):
    TYPE: ClassVar[str] = "publicity.PublicityPassed"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    round_date: date
    passed_on: date


class CaseDisputed(Event):
    TYPE: ClassVar[str] = "publicity.CaseDisputed"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    round_date: date
    objections: int
    disputed_on: date


class PublicityRoundClosed(Event):
    TYPE: ClassVar[str] = "publicity.PublicityRoundClosed"
    SUBJECT: ClassVar[str] = "round_date"

    round_date: date
    passed: int
    disputed: int


class SharingNoticePublished(Event):
    """A sharing notice from billing, published as a public record (SPEC §5)."""

    TYPE: ClassVar[str] = "publicity.SharingNoticePublished"
    SUBJECT: ClassVar[str] = "period_id"

    period_id: str
    plan: PlanId
    sharing_date: date
    cases: int
    case_ids: tuple[str, ...]
    benefits_fen: NonNegativeFen
    fee_fen: NonNegativeFen
    members_sharing: int
    base_share_fen: NonNegativeFen
    members_paying_one_fen_more: int
    subsidy_fen: NonNegativeFen
