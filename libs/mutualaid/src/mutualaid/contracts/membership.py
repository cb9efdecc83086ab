"""membership.* commands and events (SPEC §3, §8). Events carry masked personal data only."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Command, Event, Id
from .common import PlanId, Relation, Text


class JoinPlan(Command):
    TYPE: ClassVar[str] = "membership.JoinPlan"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    plan: PlanId
    national_id: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    relation: Relation
    payer_credit_score: Annotated[int, Field(ge=0, le=1000)] | None = None
    health_declaration: bool
    chronic_conditions: tuple[str, ...] = ()
    joined_on: date


class LeavePlan(Command):
    TYPE: ClassVar[str] = "membership.LeavePlan"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    left_on: date
    reason: Text | None = None


class TransferPlan(Command):
    TYPE: ClassVar[str] = "membership.TransferPlan"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    to_plan: PlanId
    transferred_on: date


class MemberJoined(Event):
    TYPE: ClassVar[str] = "membership.MemberJoined"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    plan: PlanId
    relation: Relation
    masked_name: str
    masked_national_id: str
    # Claims needs the age at first diagnosis to fix the benefit; the birth date alone does
    # not identify a person once the ID number and name are masked.
    birth_date: date
    joined_on: date
    waiting_period_ends_on: date
    rule_version: str


class MemberLeft(Event):
    TYPE: ClassVar[str] = "membership.MemberLeft"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    plan: PlanId
    left_on: date


class MemberLapsed(Event):
    TYPE: ClassVar[str] = "membership.MemberLapsed"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    plan: PlanId
    lapsed_on: date


class MemberTransferred(Event):
    TYPE: ClassVar[str] = "membership.MemberTransferred"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    from_plan: PlanId
    to_plan: PlanId
    transferred_on: date
    waiting_period_ends_on: date


class MemberCoverageEnded(Event):
    TYPE: ClassVar[str] = "membership.MemberCoverageEnded"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    payer_id: Id
    plan: PlanId
    ended_on: date
    reason: Literal["benefit_paid", "age_limit"]


#: Every way a member leaves the sharing roll and coverage.
MemberExit = MemberLeft | MemberLapsed | MemberCoverageEnded
MEMBER_EXITS: tuple[type[Event], ...] = (MemberLeft, MemberLapsed, MemberCoverageEnded)


def exit_date(event: MemberExit) -> date:
    if isinstance(event, MemberLeft):
        return event.left_on
    if isinstance(event, MemberLapsed):
        return event.lapsed_on
    return event.ended_on
