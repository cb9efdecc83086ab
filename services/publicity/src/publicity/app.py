"""``build_app(settings)``: the publicity service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from .handlers import router
from .metrics import PublicityMetrics
from .resources import resources_factory
from .scheduler import Clock, china_today, scheduler_task
from .settings import PublicitySettings


def definition(today: Clock = china_today) -> ServiceDefinition:
    """A fresh definition per app: each app gets its own business counters (tests build
    several apps in one process). ``today`` is the scheduler's clock."""
    metrics = PublicityMetrics()
    return ServiceDefinition(name="publicity", router=router,
                             migrations=files("publicity") / "migrations",
                             resources=resources_factory(metrics), metrics=metrics.register,
                             background=(scheduler_task(today),))


def build_app(settings: PublicitySettings | None = None, *, today: Clock = china_today
              ) -> AsgiFastStream:
    return build_service_app(definition(today), settings or PublicitySettings())
