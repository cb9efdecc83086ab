"""``build_app(settings)``: the membership service, wired but not connected."""

from __future__ import annotations

from importlib.resources import files

from faststream.asgi import AsgiFastStream

from mutualaid.runtime import ServiceDefinition, build_service_app

from . import metrics
from .handlers import router
from .settings import MembershipSettings

DEFINITION = ServiceDefinition(name="membership", router=router,
                               migrations=files("membership") / "migrations",
                               metrics=metrics.create, background=(metrics.refresh_plan_size,))


def build_app(settings: MembershipSettings | None = None) -> AsgiFastStream:
    return build_service_app(DEFINITION, settings or MembershipSettings())
