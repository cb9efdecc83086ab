"""Maps (topic, CloudEvent type) to a typed handler. Commands come from the service's own
command topic; events from the topic their class names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer

from mutualaid.contracts import Command, Event, Message, topics
from mutualaid.contracts.envelope import CloudEvent
from mutualaid.errors import Rejected

from .overlap import WriteBehind

__all__ = ["BatchContext", "BatchOutcome", "HandlerContext", "Rejected", "Route", "Router"]


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler may use: the open transaction and the incoming envelope."""

    conn: asyncpg.Connection
    envelope: CloudEvent
    resources: Any  # the service's own start-up resources (rulebook, settings, ...)
    #: The service's Kafka producer, for a handler that streams more records than belong
    #: in the outbox (billing's payment instructions); ``None`` outside a running service.
    producer: AIOKafkaProducer | None = None
    #: Writes the handler hands over to finish while its events are encoded.
    writes: WriteBehind = field(default_factory=WriteBehind)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """For handlers that take a run of same-type messages at once: one transaction, the
    envelopes in the order of the messages."""

    conn: asyncpg.Connection
    envelopes: Sequence[CloudEvent]
    resources: Any
    #: Writes the handler hands over to finish while its events are encoded.
    writes: WriteBehind = field(default_factory=WriteBehind)


M = TypeVar("M", bound=Message)
Handler = Callable[[Any, HandlerContext], Awaitable[Sequence[Event]]]
#: One outcome per message, in order: its events, or the rejection of that one message.
BatchOutcome = Sequence[Event] | Rejected
BatchHandler = Callable[[Sequence[Any], BatchContext], Awaitable[Sequence[BatchOutcome]]]


@dataclass(frozen=True, slots=True)
class Route:
    model: type[Message]
    handler: Handler | BatchHandler
    is_command: bool
    #: The handler takes consecutive messages of this type together (see BatchContext).
    batch: bool = False
    #: Applying the message twice changes nothing (a projection keyed by the message's
    #: own ids), so the inbox does not record it: a store of the size of the stream saved.
    idempotent: bool = False


class Router:
    def __init__(self, service: str, *, takes_commands: bool = True) -> None:
        """``takes_commands=False``: a router for a consumer group that reads only events
        (billing's workers), so it does not subscribe to the command topic."""
        self.service = service
        self.takes_commands = takes_commands
        self._routes: dict[tuple[str, str], Route] = {}

    @property
    def command_topic(self) -> str:
        return topics.commands(self.service)

    def command(self, model: type[M]) -> Callable[[Handler], Handler]:
        if not issubclass(model, Command) or model.service() != self.service:
            raise TypeError(f"{model.__name__} is not a {self.service} command")
        return self._add(self.command_topic, model, is_command=True)

    def command_batch(self, model: type[M]) -> Callable[[BatchHandler], BatchHandler]:
        """Like ``command``, for a handler that decides a run of these commands at once:
        it loads state for all of them in a few queries instead of a few per command."""
        if not issubclass(model, Command) or model.service() != self.service:
            raise TypeError(f"{model.__name__} is not a {self.service} command")
        return self._add(self.command_topic, model, is_command=True, batch=True)  # type: ignore[return-value]

    def event(self, model: type[Event]) -> Callable[[Handler], Handler]:
        if not issubclass(model, Event):
            raise TypeError(f"{model.__name__} is not an event")
        return self._add(model.topic(), model, is_command=False)

    def events(self, *models: type[Event]) -> Callable[[Handler], Handler]:
        """One handler for several event types (e.g. every way a member exits)."""
        def register(handler: Handler) -> Handler:
            for model in models:
                self.event(model)(handler)
            return handler
        return register

    def event_batch(self, *models: type[Event], idempotent: bool = False
                    ) -> Callable[[BatchHandler], BatchHandler]:
        """One handler for consecutive events of these types, taken together: a projection
        that writes a consumed batch in a few statements instead of one per event.
        ``idempotent``: the handler's writes are no-ops when repeated, so the inbox need not
        record these events (see Route.idempotent)."""
        def register(handler: BatchHandler) -> BatchHandler:
            for model in models:
                if not issubclass(model, Event):
                    raise TypeError(f"{model.__name__} is not an event")
                self._add(model.topic(), model, is_command=False, batch=True,  # type: ignore[arg-type]
                          idempotent=idempotent)(handler)
            return handler
        return register

    def _add(self, topic: str, model: type[Message], *, is_command: bool, batch: bool = False,
             idempotent: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            key = (topic, model.TYPE)
            if key in self._routes:
                raise ValueError(f"{model.TYPE} on {topic} already has a handler")
            self._routes[key] = Route(model, handler, is_command, batch, idempotent)
            return handler
        return register

    def topics(self) -> list[str]:
        own = {self.command_topic} if self.takes_commands else set()
        return sorted(own | {topic for topic, _ in self._routes})

    def lookup(self, topic: str, type_name: str) -> Route | None:
        return self._routes.get((topic, type_name))

    def is_command_topic(self, topic: str) -> bool:
        return self.takes_commands and topic == self.command_topic

    def routes(self) -> dict[tuple[str, str], Route]:
        return dict(self._routes)
