"""Every Kafka topic of the platform, named in one place (SPEC §8)."""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("membership", "claims", "publicity", "jury", "billing")


def commands(service: str) -> str:
    return f"{service}.commands"


def events(service: str) -> str:
    return f"{service}.events"


def dlq(service: str) -> str:
    return f"{service}.dlq"


PAYMENT_INSTRUCTIONS = "billing.payment-instructions"
PAYMENT_RESULTS = "payments.results"


def all_topics() -> list[str]:
    names: list[str] = []
    for service in SERVICES:
        names += [commands(service), events(service), dlq(service)]
    return names + [PAYMENT_INSTRUCTIONS, PAYMENT_RESULTS]
