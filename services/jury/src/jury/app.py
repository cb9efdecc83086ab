"""``build_app(settings)``: the jury service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from . import metrics
from .handlers import router
from .settings import JurySettings

DEFINITION = ServiceDefinition(name="jury", router=router,
                               migrations=files("jury") / "migrations",
                               metrics=metrics.create, background=(metrics.refresh,))


def build_app(settings: JurySettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or JurySettings())
