"""Prometheus metrics of the runtime, one registry per app (tests build several apps in one
process; a shared default registry would reject the second)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class RuntimeMetrics:
    registry: CollectorRegistry
    messages: Counter
    rejected: Counter
    dlq: Counter
    duplicates: Counter
    batch_seconds: Histogram
    outbox_published: Counter
    outbox_pending: Gauge
    outbox_oldest_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RuntimeMetrics:
        return cls(
            registry=registry,
            messages=Counter("mutualaid_messages_total", "Messages handled, by type and outcome",
                             ["type", "outcome"], registry=registry),
            rejected=Counter("mutualaid_commands_rejected_total",
                             "Commands rejected, by reason code", ["reason_code"],
                             registry=registry),
            dlq=Counter("mutualaid_dlq_total", "Messages copied to the DLQ", ["topic"],
                        registry=registry),
            duplicates=Counter("mutualaid_duplicates_total",
                               "Messages skipped as already handled (inbox)",
                               registry=registry),
            batch_seconds=Histogram("mutualaid_batch_seconds",
                                    "Time to handle one consumed batch in one transaction",
                                    registry=registry),
            outbox_published=Counter("mutualaid_outbox_published_total",
                                     "Events relayed from the outbox to Kafka",
                                     registry=registry),
            outbox_pending=Gauge("mutualaid_outbox_pending",
                                 "Events in the outbox not yet acknowledged by Kafka",
                                 registry=registry),
            outbox_oldest_age=Gauge("mutualaid_outbox_oldest_age_seconds",
                                    "Age of the oldest event in the outbox (0 when empty)",
                                    registry=registry),
        )
