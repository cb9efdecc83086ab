"""``build_app(settings)``: the publicity service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from .handlers import router
from .settings import PublicitySettings

DEFINITION = ServiceDefinition(name="publicity", router=router, migrations=files("publicity") / "migrations")


def build_app(settings: PublicitySettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or PublicitySettings())
