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
    """A panel seated for one draw round. ``juror_ids`` is the whole panel of the round in
    seat order: first the voters kept from earlier rounds (``kept_juror_ids``, by member
    id; their votes stand), then the jurors newly drawn in the order the seed gives them (see
    ``jury.domain.panel`` for how anyone can re-derive it)."""

    TYPE: ClassVar[str] = "jury.PanelDrawn"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    draw_round: int
    seed: str
    juror_ids: tuple[str, ...]
    kept_juror_ids: tuple[str, ...] = ()
    origin: Literal["dispute", "appeal"] = "dispute"
    #: The panel votes until then.
    voting_closes_at: AwareDatetime | None = None


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
    origin: Literal["dispute", "appeal"] = "dispute"
    #: Panel mode: the round whose panel reached the quorum (0 in open mode).
    draw_round: int = 0


class VotingInconclusive(Event):
    """Voting closed without the minimum votes or quorum: no verdict. A new window opens
    until ``voting_closes_at`` (in panel mode with a new round's panel when one could be
    drawn: see ``PanelDrawn``); the votes cast so far stand."""

    TYPE: ClassVar[str] = "jury.VotingInconclusive"
    SUBJECT: ClassVar[str] = "case_id"

    case_id: Id
    votes_for: int
    votes_against: int
    required_votes: int
    closed_at: AwareDatetime
    mode: Literal["open", "panel"] = "open"
    origin: Literal["dispute", "appeal"] = "dispute"
    draw_round: int = 0
    #: The end of the new voting window.
    voting_closes_at: AwareDatetime | None = None
