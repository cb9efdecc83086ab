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
#: Billing's own work queue: shards of a sharing run, consumed by the billing workers' group.
SHARD_TASKS = "billing.shard-tasks"
#: What the workers report back to the billing coordinator.
SHARD_RESULTS = "billing.shard-results"


#: Topics that need more partitions than the deployment's default: work is shared by
#: partition, so the shard queue needs several per worker SREs may start.
MIN_PARTITIONS = {SHARD_TASKS: 24}


def all_topics() -> list[str]:
    names: list[str] = []
    for service in SERVICES:
        names += [commands(service), events(service), dlq(service)]
    return names + [PAYMENT_INSTRUCTIONS, PAYMENT_RESULTS, SHARD_TASKS, SHARD_RESULTS]
