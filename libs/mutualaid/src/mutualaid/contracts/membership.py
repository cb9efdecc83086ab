"""membership.* commands and events (SPEC §3, §8). Events carry masked personal data only."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Command, Event, Id
from .common import PlanId, Relation, Text

#: Largest member list one ImportMembers command may carry: about 0.7 MB of JSON, inside
#: Kafka's default 1 MB message limit.
IMPORT_BATCH_MAX = 2_000


#: No control characters (C0, DEL, C1) and at least one character that is not a space.
PERSON_NAME = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"


class NewMember(BaseModel):
    """Everything needed to admit one person: the data of JoinPlan, one row of an import."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: Id
    payer_id: Id
    plan: PlanId
    national_id: Annotated[str, Field(min_length=1, max_length=32)]
    #: Printable, not blank: masking a blank name failed the join, and a name is shown
    #: (masked) in events and on publicity pages (found by the hostile-input fuzz).
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=PERSON_NAME)]
    relation: Relation
    payer_credit_score: Annotated[int, Field(ge=0, le=1000)] | None = None
    health_declaration: bool
    chronic_conditions: tuple[str, ...] = ()
    joined_on: date


class JoinPlan(Command, NewMember):
    TYPE: ClassVar[str] = "membership.JoinPlan"
    SUBJECT: ClassVar[str] = "member_id"


class ImportMembers(Command):
    """Migration of an existing member base: the same rules and events as JoinPlan, for up
    to IMPORT_BATCH_MAX members at once. Members are decided in order, so payers come before
    the family members they pay for: in the same command, or in an earlier command of the
    same migration (its id is the Kafka key, which keeps a migration's commands in order)."""

    TYPE: ClassVar[str] = "membership.ImportMembers"
    SUBJECT: ClassVar[str] = "migration_id"

    migration_id: Id
    import_id: Id
    members: tuple[NewMember, ...] = Field(min_length=1, max_length=IMPORT_BATCH_MAX)


class EndCoverageAtAgeLimit(Command):
    """Calendar step (daily): ends critical-illness coverage of members who are 60 by ``on``.
    Idempotent: a member already ended is not ended again."""

    TYPE: ClassVar[str] = "membership.EndCoverageAtAgeLimit"
    SUBJECT: ClassVar[str] = "on"

    on: date


class LeavePlan(Command):
    TYPE: ClassVar[str] = "membership.LeavePlan"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    left_on: date
    reason: Text | None = None


class EraseMember(Command):
    """Right to erasure: forget a former member's personal data. Their member id, plan and
    dates stay, so the money history (charges, instructions, cases) stays whole."""

    TYPE: ClassVar[str] = "membership.EraseMember"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    requested_on: date


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
    #: The last sharing day whose roll the member was on (the roll is fixed on the publicity
    #: day before it); None when they left before their first publicity day.
    last_sharing_date: date | None


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


class MemberErased(Event):
    """The member's personal data is gone from membership; services holding copies of it
    (masked forms, birth date) forget them too."""

    TYPE: ClassVar[str] = "membership.MemberErased"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    erased_on: date


class ImportRejection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    reason_code: str
    message: str


class MembersImported(Event):
    """The outcome of one ImportMembers: accepted members each also get a MemberJoined."""

    TYPE: ClassVar[str] = "membership.MembersImported"
    SUBJECT: ClassVar[str] = "migration_id"

    migration_id: Id
    import_id: Id
    accepted: int
    rejected: tuple[ImportRejection, ...]


class AgeLimitApplied(Event):
    TYPE: ClassVar[str] = "membership.AgeLimitApplied"
    SUBJECT: ClassVar[str] = "on"

    on: date
    coverage_ended: int


class PlanBelowDissolutionThreshold(Event):
    """A plan that had reached its threshold fell below it: it carries on for one more year
    and operators are alerted (SPEC §2)."""

    TYPE: ClassVar[str] = "membership.PlanBelowDissolutionThreshold"
    SUBJECT: ClassVar[str] = "plan"

    plan: PlanId
    active_members: int
    threshold: int
    detected_on: date
    carries_on_until: date


#: Every way a member leaves the sharing roll and coverage.
MemberExit = MemberLeft | MemberLapsed | MemberCoverageEnded
MEMBER_EXITS: tuple[type[Event], ...] = (MemberLeft, MemberLapsed, MemberCoverageEnded)


def exit_date(event: MemberExit) -> date:
    if isinstance(event, MemberLeft):
        return event.left_on
    if isinstance(event, MemberLapsed):
        return event.lapsed_on
    return event.ended_on
