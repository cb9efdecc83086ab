"""Base types of every wire message: commands, events and their type registry.

A message class names its CloudEvent ``type`` (``<service>.<Name>``) in ``TYPE``; defining
the class registers it, so a consumer finds the data model from the envelope alone.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

#: Money is always integer fen (1 CNY = 100 fen); the alias keeps that visible in signatures.
Fen = Annotated[int, Field(strict=True)]
NonNegativeFen = Annotated[int, Field(strict=True, ge=0)]
# No control characters: ids become Postgres keys (NUL is refused) and Kafka keys.
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]

_REGISTRY: dict[str, type[Message]] = {}


class Message(BaseModel):
    """A frozen wire payload: the ``data`` of one CloudEvent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    #: Field whose value is the aggregate id: the CloudEvent ``subject`` and the Kafka key.
    SUBJECT: ClassVar[str]
    #: Topic an event is written to; ``None`` means ``<service>.events``.
    TOPIC: ClassVar[str | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        type_name = cls.__dict__.get("TYPE")
        if type_name is None:
            return
        service, _, name = type_name.partition(".")
        if not service or not name:
            raise TypeError(f"{cls.__name__}.TYPE must be '<service>.<Name>', got {type_name!r}")
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise TypeError(f"message type {type_name!r} defined twice")
        _REGISTRY[type_name] = cls

    @classmethod
    def service(cls) -> str:
        return cls.TYPE.split(".", 1)[0]

    def subject(self) -> str:
        return str(getattr(self, self.SUBJECT))


class Command(Message):
    """An imperative request to one service (``JoinPlan``)."""


class Event(Message):
    """A fact a service publishes (``MemberJoined``)."""

    @classmethod
    def topic(cls) -> str:
        # Asked once per outgoing event: remembered per class.
        if (topic := _TOPICS.get(cls)) is None:
            topic = _TOPICS[cls] = cls.TOPIC or f"{cls.service()}.events"
        return topic


_TOPICS: dict[type[Event], str] = {}


def message_class(type_name: str) -> type[Message] | None:
    """The registered data model for a CloudEvent ``type``, or ``None`` when unknown."""
    return _REGISTRY.get(type_name)


def registered_types() -> dict[str, type[Message]]:
    return dict(_REGISTRY)
