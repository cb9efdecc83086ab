"""``build_app(settings)``: the billing service, wired but not connected."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import Consumer, ServiceDefinition, ServiceSettings, build_service_app

from . import handlers, metrics, worker
from .settings import BillingSettings

#: The workers' consumer group: every worker process shares the shard tasks.
WORKER_GROUP = "billing-workers"


def _consumers(settings: ServiceSettings) -> Sequence[Consumer]:
    role = getattr(settings, "role", "all")
    groups = []
    if role in ("all", "coordinator"):
        groups.append(Consumer(handlers.router, "billing"))
    if role in ("all", "worker"):
        # One shard per consumed batch: a shard is a transaction of its own.
        groups.append(Consumer(worker.router, WORKER_GROUP, max_records=1))
    return groups


DEFINITION = ServiceDefinition(name="billing", router=handlers.router,
                               migrations=files("billing") / "migrations",
                               metrics=metrics.create, background=(metrics.refresh,),
                               consumers=_consumers)


def build_app(settings: BillingSettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or BillingSettings())
