"""Publicity's business metrics. The counters are created unregistered and registered on the
app's registry by ``register`` (``ServiceDefinition.metrics``), so handlers can reach them
through the resources, which the runtime builds before the registry exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=None)


@dataclass(frozen=True)
class PublicityMetrics:
    #: outcome: ``filed`` or the reason code of the refusal.
    objections: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_objections", "Objections, by outcome", ("outcome",)))
    cases_published: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_cases_published", "Cases published in a publicity round"))
    #: action: ``opened`` or ``closed``.
    rounds: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_rounds", "Publicity rounds opened and closed", ("action",)))
    #: outcome: ``passed`` or ``disputed``.
    cases_decided: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_cases_decided", "Cases at the close of their round, by outcome",
        ("outcome",)))
    sharing_notices: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_sharing_notices", "Sharing notices published"))
    #: type: the command type the built-in scheduler sent.
    scheduled: Counter = field(default_factory=lambda: _counter(
        "mutualaid_publicity_scheduled_commands", "Calendar commands sent by the scheduler",
        ("type",)))

    def register(self, registry: CollectorRegistry) -> PublicityMetrics:
        for collector in (self.objections, self.cases_published, self.rounds,
                          self.cases_decided, self.sharing_notices, self.scheduled):
            registry.register(collector)
        return self
