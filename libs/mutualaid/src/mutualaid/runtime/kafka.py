"""Kafka client settings and topic provisioning, from one place."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mutualaid.contracts.topics import MIN_PARTITIONS

from .settings import ServiceSettings

log = structlog.get_logger(__name__)


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """Mutual TLS to the broker when configured: the broker's CA, this service's cert."""
    if settings.kafka_security_protocol != "SSL":
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile))
    context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile))
    return context


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """What every Kafka client of a service needs to reach the broker."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers,
            "security_protocol": settings.kafka_security_protocol,
            "ssl_context": ssl_context(settings)}


def producer_options(settings: ServiceSettings) -> dict[str, Any]:
    acks: int | str = settings.kafka_acks if settings.kafka_acks == "all" else int(
        settings.kafka_acks)
    return {
        **connection_options(settings),
        "acks": acks,
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": 1024 * 1024,
        "max_request_size": 8 * 1024 * 1024,
    }


def new_producer(settings: ServiceSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(client_id=client_id, **producer_options(settings))


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str]) -> list[str]:
    """Create missing topics; in production they are provisioned by the deployment and this
    is switched off with ``kafka_create_topics=false``."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(t, max(settings.kafka_topic_partitions,
                                    MIN_PARTITIONS.get(t, 1)), 1) for t in missing])
            except TopicAlreadyExistsError:
                pass  # another replica won the race
            log.info("topics created", topics=missing)
        return missing
    finally:
        await admin.close()
