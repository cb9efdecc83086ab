"""``build_app(settings)``: the billing service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from .handlers import router
from .settings import BillingSettings

DEFINITION = ServiceDefinition(name="billing", router=router, migrations=files("billing") / "migrations")


def build_app(settings: BillingSettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or BillingSettings())
