"""``<service>.CommandRejected``: the one failure outcome of a command (SPEC §8)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from .base import Event


class ReasonCode(StrEnum):
    """Reason codes shared by every service; services add their own domain codes as strings."""

    MALFORMED = "MALFORMED"  # not JSON or not a CloudEvent
    UNKNOWN_TYPE = "UNKNOWN_TYPE"  # no such command on this topic
    INVALID_DATA = "INVALID_DATA"  # data does not match the command's schema
    PROCESSING_FAILED = "PROCESSING_FAILED"  # the service failed on it; see the DLQ copy
    ALREADY_APPLIED = "ALREADY_APPLIED"  # a calendar step already done for that date
    TOO_LARGE = "TOO_LARGE"  # above the service's message size limit; not even parsed
    UNAUTHORIZED_SOURCE = "UNAUTHORIZED_SOURCE"  # the CloudEvents source may not send this
    ID_REUSED = "ID_REUSED"  # DLQ only: an id already handled, arriving with other content


#: A CloudEvent id as the envelope accepts it (up to 256 characters, wider than ``Id``): a
#: rejection must be able to name any command it refuses, or building it fails the batch.
CommandId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class CommandRejected(Event):
    """Built per service: ``TYPE`` is ``<service>.CommandRejected``; see ``rejected_type``."""

    SUBJECT: ClassVar[str] = "command_id"

    command_id: CommandId
    command_type: str
    reason_code: str
    message: str


def _rejected_class(service: str) -> type[CommandRejected]:
    return type(
        f"{service.capitalize()}CommandRejected",
        (CommandRejected,),
        {"TYPE": f"{service}.CommandRejected", "__module__": __name__},
    )


REJECTED: dict[str, type[CommandRejected]] = {
    service: _rejected_class(service)
    for service in ("membership", "claims", "publicity", "jury", "billing")
}


def rejected(service: str, *, command_id: str, command_type: str, reason_code: str,
             message: str) -> CommandRejected:
    return REJECTED[service](
        command_id=command_id, command_type=command_type, reason_code=reason_code,
        message=message[:2000],
    )
