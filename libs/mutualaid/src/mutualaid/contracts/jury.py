"""jury.* commands and events (SPEC §6, §8)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from .base import Command, Event, Id


class QualifyJuror(Command):
    TYPE: ClassVar[str] = "jury.QualifyJuror"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    exam_score: Annotated[int, Field(ge=0, le=100)]
    qualified_on: date


class CastVote(Command):
    TYPE: ClassVar[str] = "jury.CastVote"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    juror_id: Id
    approve: bool
    cast_at: AwareDatetime


class CloseVoting(Command):
    TYPE: ClassVar[str] = "jury.CloseVoting"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    closed_at: AwareDatetime


class JurorQualified(Event):
    TYPE: ClassVar[str] = "jury.JurorQualified"
    SUBJECT: ClassVar[str] = "member_id"

    member_id: Id
    exam_score: int
    qualified_on: date


class JuryCaseOpened(Event):
    TYPE: ClassVar[str] = "jury.JuryCaseOpened"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    mode: Literal["open", "panel"]
    origin: Literal["dispute", "appeal"]
    voting_closes_at: AwareDatetime


class PanelDrawn(Event):
    TYPE: ClassVar[str] = "jury.PanelDrawn"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    draw_round: int
    seed: str
    juror_ids: tuple[str, ...]


class VoteCast(Event):
    TYPE: ClassVar[str] = "jury.VoteCast"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    juror_id: Id
    approve: bool
    cast_at: AwareDatetime


class JuryVerdict(Event):
    TYPE: ClassVar[str] = "jury.JuryVerdict"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    approved: bool
    votes_for: int
    votes_against: int
    mode: Literal["open", "panel"]
    decided_at: AwareDatetime


class VotingInconclusive(Event):
    """Voting closed without the minimum votes or quorum: no verdict, the case waits."""

    TYPE: ClassVar[str] = "jury.VotingInconclusive"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    votes_for: int
    votes_against: int
    required_votes: int
    closed_at: AwareDatetime
