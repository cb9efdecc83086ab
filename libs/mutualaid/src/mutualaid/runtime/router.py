"""Maps (topic, CloudEvent type) to a typed handler. Commands come from the service's own
command topic; events from the topic their class names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from mutualaid.contracts import Command, Event, Message, topics
from mutualaid.contracts.envelope import CloudEvent
from mutualaid.errors import Rejected

__all__ = ["BatchContext", "BatchOutcome", "HandlerContext", "Rejected", "Route", "Router"]


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler may use: the open transaction and the incoming envelope."""

    conn: asyncpg.Connection
    envelope: CloudEvent
    resources: Any  # the service's own start-up resources (rulebook, settings, ...)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """For handlers that take a run of same-type messages at once: one transaction, the
    envelopes in the order of the messages."""

    conn: asyncpg.Connection
    envelopes: Sequence[CloudEvent]
    resources: Any


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


class Router:
    def __init__(self, service: str) -> None:
        self.service = service
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

    def _add(self, topic: str, model: type[Message], *, is_command: bool, batch: bool = False
             ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            key = (topic, model.TYPE)
            if key in self._routes:
                raise ValueError(f"{model.TYPE} on {topic} already has a handler")
            self._routes[key] = Route(model, handler, is_command, batch)
            return handler
        return register

    def topics(self) -> list[str]:
        return sorted({self.command_topic} | {topic for topic, _ in self._routes})

    def lookup(self, topic: str, type_name: str) -> Route | None:
        return self._routes.get((topic, type_name))

    def is_command_topic(self, topic: str) -> bool:
        return topic == self.command_topic

    def routes(self) -> dict[tuple[str, str], Route]:
        return dict(self._routes)
