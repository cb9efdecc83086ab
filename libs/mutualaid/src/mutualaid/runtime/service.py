"""The app factory every service uses: one consumer for its topics, the outbox relay, the
database pool and migrations, ``/health`` and ``/metrics``, graceful shutdown.

Nothing connects when the app is built; connections open in the start-up hook, so building
an app is cheap and safe in tests.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Any, Union

import asyncpg
from aiokafka import AIOKafkaProducer
import orjson
import structlog
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, AsyncAPIRoute, get
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, make_asgi_app

from faststream.security import BaseSecurity
from faststream.specification import AsyncAPI

from mutualaid.contracts import Event, registered_types, topics

from . import db
from .dispatch import Dispatcher
from .kafka import ensure_topics, new_producer, ssl_context
from .logging import configure_logging
from .metrics import RuntimeMetrics
from .outbox import OutboxRelay
from .resources import standard_resources
from .retention import keep_pruning
from .router import Router
from .settings import ServiceSettings

log = structlog.get_logger(__name__)

BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]


async def supervise(name: str, start: Callable[[], Awaitable[None]], *,
                    backoff: float = 1.0, max_backoff: float = 60.0) -> None:
    """Run a background loop for the life of the service: one that raises (an error its
    own ``except`` did not name, e.g. asyncpg's InternalClientError when Postgres terminates
    its connection between two statements) is logged and started again, rather than
    leaving the metrics it refreshes, or the inbox it prunes, silently stale. Issue 7."""
    delay = backoff
    while True:
        try:
            await start()
            return
        except Exception:
            log.exception("background task failed; restarting it", task=name,
                          retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    router: Router
    migrations: Traversable | None
    #: Built once at app construction (e.g. the validated rulebook): a bad rulebook stops
    #: the service before it touches Kafka or Postgres.
    resources: Callable[[ServiceSettings], Any] = standard_resources
    background: Sequence[BackgroundTask] = ()
    #: Extra Prometheus collectors registered on the app's registry.
    metrics: Callable[[CollectorRegistry], Any] = lambda _registry: None
    #: The consumer groups a process of this service joins, chosen from its settings;
    #: by default one group named after the service, reading everything ``router`` routes.
    consumers: Callable[[ServiceSettings], Sequence[Consumer]] | None = None


@dataclass(frozen=True)
class Consumer:
    """One consumer group: its router and its group id."""

    router: Router
    group_id: str
    #: Records per consumed batch; None: the service's ``consumer_max_records``.
    max_records: int | None = None


@dataclass
class ServiceRuntime:
    definition: ServiceDefinition
    settings: ServiceSettings
    broker: KafkaBroker
    metrics: RuntimeMetrics
    resources: Any
    service_metrics: Any
    dispatchers: list[Dispatcher]
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    producer: AIOKafkaProducer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.definition.name

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("the service is not started")
        return self.pool


def _raw(_: KafkaMessage) -> None:
    # The dispatcher reads the raw records itself, so a message that is not JSON reaches it
    # (and the DLQ) instead of failing inside the framework's decoder.
    return None


def build_service_app(definition: ServiceDefinition, settings: ServiceSettings
                      ) -> AsgiFastStream:
    configure_logging(definition.name, settings.log_level)
    registry = CollectorRegistry()
    metrics = RuntimeMetrics.create(registry)
    resources = definition.resources(settings)
    tls = ssl_context(settings)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=BaseSecurity(ssl_context=tls, use_ssl=True) if tls else None,
        client_id=f"mutualaid-{definition.name}",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=definition.name)],
        enable_idempotence=settings.kafka_enable_idempotence,
        logger=logging.getLogger(f"mutualaid.{definition.name}.broker"),
    )
    consumers = (definition.consumers(settings) if definition.consumers is not None
                 else [Consumer(definition.router, definition.name)])
    rt = ServiceRuntime(definition, settings, broker, metrics, resources,
                        definition.metrics(registry), [])
    for consumer in consumers:
        rt.dispatchers.append(_subscribe(rt, consumer))

    _document_outputs(broker, definition.name)

    async def start(**_: Any) -> None:
        rt.pool = await db.create_pool(settings.database_url, min_size=settings.db_pool_min,
                                       max_size=settings.db_pool_max,
                                       plan_cache_mode=settings.db_plan_cache_mode,
                                       application_name=definition.name)
        await db.migrate(rt.pool, rt.schema, definition.migrations)
        if settings.kafka_create_topics:
            await ensure_topics(settings, topics.all_topics())
        rt.producer = new_producer(settings, f"mutualaid-{definition.name}-relay")
        await rt.producer.start()
        for dispatcher in rt.dispatchers:
            dispatcher.producer = rt.producer
        rt.relay = OutboxRelay(dsn=settings.database_url, schema=rt.schema, producer=rt.producer,
                               metrics=metrics, batch_size=settings.relay_batch_size,
                               poll_seconds=settings.relay_poll_seconds)
        rt.tasks.append(asyncio.create_task(rt.relay.run(), name="outbox-relay"))
        pool = rt.pool
        rt.tasks.append(asyncio.create_task(supervise("inbox-retention", lambda: keep_pruning(
            pool, rt.schema, timedelta(days=settings.inbox_retention_days),
            timedelta(seconds=settings.inbox_prune_every_seconds))), name="inbox-retention"))
        for task in definition.background:
            rt.tasks.append(asyncio.create_task(
                supervise(task.__name__, lambda task=task: task(rt)), name=task.__name__))
        log.info("service started", http_port=settings.http_port,
                 groups={c.group_id: c.router.topics() for c in consumers})

    async def stop() -> None:
        # The broker has stopped consuming by now; let the relay drain what is committed.
        for task in rt.tasks[1:]:
            task.cancel()
        if rt.relay is not None:
            rt.relay.stop()
            await asyncio.wait(rt.tasks[:1], timeout=10)
        if rt.producer is not None:
            await rt.producer.stop()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        if rt.pool is not None:
            await rt.pool.close()
        log.info("service stopped")

    @get(description="Readiness: database, broker and outbox relay")
    async def health(scope: Any) -> AsgiResponse:
        checks = await _checks(rt)
        ok = all(v is True or v in ("leader", "standby") for v in checks.values())
        body = orjson.dumps({"service": definition.name, "status": "ok" if ok else "unavailable",
                             "checks": checks})
        return AsgiResponse(body, 200 if ok else 503, {"content-type": "application/json"})

    app = AsgiFastStream(
        broker,
        specification=AsyncAPI(
            title=f"mutualaid {definition.name}", version="1.0.0",
            description=f"The {definition.name} service. Every message is a CloudEvents 1.0 "
                        "event in structured JSON mode; the schemas below are its `data`."),
        asgi_routes=[("/health", health), ("/metrics", make_asgi_app(registry))],
        # No "try it out" route: it would let any HTTP caller publish to the broker.
        asyncapi_path=AsyncAPIRoute("/asyncapi", try_it_out_path=None),
        on_startup=[start],
        after_shutdown=[stop],
        logger=logging.getLogger(f"mutualaid.{definition.name}.app"),
    )
    app.runtime = rt  # type: ignore[attr-defined]
    return app


def _subscribe(rt: ServiceRuntime, consumer: Consumer) -> Dispatcher:
    """One batch subscriber per consumer group, each with its own dispatcher."""
    name, settings = rt.definition.name, rt.settings
    dispatcher = Dispatcher(service=name, schema=name, router=consumer.router,
                            metrics=rt.metrics, resources=rt.resources,
                            max_message_bytes=settings.max_message_bytes,
                            allowed_sources=settings.allowed_sources)

    @rt.broker.subscriber(
        *consumer.router.topics(),
        group_id=consumer.group_id,
        batch=True,
        max_records=consumer.max_records or settings.consumer_max_records,
        max_partition_fetch_bytes=settings.consumer_max_partition_fetch_bytes,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        title=f"{consumer.group_id}-inbound",
        description=f"What the {consumer.group_id} consumer group reads; CloudEvents 1.0 "
                    "structured JSON",
    )
    async def consume(body: Any, message: KafkaMessage) -> None:
        await dispatcher.process(rt.require_pool(), message.raw_message)

    return dispatcher


def _document_outputs(broker: KafkaBroker, service: str) -> None:
    """Declare what the service writes, per topic, so /asyncapi documents every event's data
    schema (the relay publishes through its own producer, not through these publishers)."""
    by_topic: dict[str, list[type[Event]]] = {}
    for model in registered_types().values():
        if issubclass(model, Event) and model.service() == service:
            by_topic.setdefault(model.topic(), []).append(model)
    for topic, models in sorted(by_topic.items()):
        broker.publisher(topic, title=f"{service}-out:{topic}",
                         schema=Union[tuple(sorted(models, key=lambda m: m.TYPE))],  # noqa: UP007
                         description=f"Events written by {service} to {topic}")
    broker.publisher(topics.dlq(service), title=f"{service}-out:{topics.dlq(service)}",
                     description="Unreadable or failed inbound messages: the original bytes, "
                                 "with dlq-reason-code, dlq-error and dlq-source-* headers")


async def _checks(rt: ServiceRuntime) -> dict[str, Any]:
    database: bool | str
    try:
        async with rt.require_pool().acquire(timeout=2) as conn:
            database = await conn.fetchval("SELECT true")
    except Exception as exc:  # any failure is "not ready", reported not raised
        database = repr(exc)
    relay = rt.relay
    # A relay whose task has ended publishes nothing: not ready, though it is no leader.
    relay_task = next((t for t in rt.tasks if t.get_name() == "outbox-relay"), None)
    return {
        "database": database,
        "broker": await rt.broker.ping(timeout=2.0),
        "outbox_relay": "missing" if relay is None else (
            "stopped" if relay_task is None or relay_task.done() else
            "leader" if relay.is_leader else "standby"),
    }
