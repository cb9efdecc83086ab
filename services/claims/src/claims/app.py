"""``build_app(settings)``: the claims service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from . import metrics
from .handlers import router
from .settings import ClaimsSettings

DEFINITION = ServiceDefinition(name="claims", router=router,
                               migrations=files("claims") / "migrations",
                               metrics=metrics.create, background=(metrics.refresh_cases,))


def build_app(settings: ClaimsSettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or ClaimsSettings())
