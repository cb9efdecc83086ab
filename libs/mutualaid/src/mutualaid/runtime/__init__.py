"""The service runtime: one way to consume, persist, publish and be observed."""

from .router import BatchContext, BatchOutcome, HandlerContext, Rejected, Router
from .service import Consumer, ServiceDefinition, ServiceRuntime, build_service_app
from .settings import ServiceSettings

__all__ = ["BatchContext", "BatchOutcome", "Consumer", "HandlerContext", "Rejected", "Router", "ServiceDefinition", "ServiceRuntime",
           "ServiceSettings", "build_service_app"]
