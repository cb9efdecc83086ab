"""Settings every service shares; each service subclasses with its own env prefix.

A prefixed variable (``MEMBERSHIP_DATABASE_URL``) wins over the shared, unprefixed one
(``DATABASE_URL``), so one environment can run all five services and still override one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource


class ServiceSettings(BaseSettings):
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/mutualaid",
        pattern=r"^postgres(ql)?://",
        description="asyncpg DSN; the service keeps its tables in its own schema",
    )
    db_pool_min: int = Field(1, ge=1)
    db_pool_max: int = Field(10, ge=1)
    #: See db.create_pool for why custom plans are the default.
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = \
        "force_custom_plan"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: Production: ``SSL`` with the broker's CA and this service's client certificate
    #: (mutual TLS); the broker's ACLs then name each service's principal (README, Security).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Production: true with acks=all. The development broker (tansu) cannot serve the
    # idempotent producer's InitProducerId, so the default is off.
    kafka_enable_idempotence: bool = False
    kafka_acks: Literal["all", "1", "0"] = "all"
    kafka_session_timeout_ms: int = Field(10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_topic_partitions: int = Field(3, ge=1)
    kafka_create_topics: bool = True
    kafka_linger_ms: int = Field(5, ge=0)
    consumer_max_records: int = Field(500, ge=1, le=10_000)
    #: Bytes fetched per partition per request. The Kafka default (1 MiB) holds one
    #: 2,000-member import command, so each would wait for its own fetch round trip.
    consumer_max_partition_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024 * 1024)

    #: Larger records are refused unread (DLQ + TOO_LARGE): a 2,000-member import is about
    #: 0.7 MB. Keep it at or under the broker's own message.max.bytes.
    max_message_bytes: int = Field(1_048_576, ge=1_024)
    #: Which CloudEvents ``source`` values may send which command: ``{"ReviewClaim":
    #: ["mutualaid/reviewers"], "*": [...]}``; a value ending in ``*`` is a prefix; ``"*"``
    #: as a key covers the commands not named. Empty: any source (development). Production
    #: sets it (deploy/k8s); broker ACLs and mTLS guard who may write the topic at all.
    allowed_sources: dict[str, list[str]] = {}

    #: Inbox rows older than this are pruned (see runtime/retention.py): keep it above the
    #: retention of every topic the service reads.
    inbox_retention_days: int = Field(35, ge=1)
    inbox_prune_every_seconds: float = Field(3_600, gt=0)

    relay_batch_size: int = Field(1_000, ge=1)
    relay_poll_seconds: float = Field(1.0, gt=0)

    #: The cycle collector's gen-0 threshold (Python's default is 700); see main._tune_gc.
    gc_gen0_threshold: int = Field(50_000, ge=100)

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    rulebook_path: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> ServiceSettings:
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            raise ValueError("kafka_heartbeat_interval_ms must be at most a third of the "
                             "session timeout")
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("db_pool_min must not exceed db_pool_max")
        if self.kafka_enable_idempotence and self.kafka_acks != "all":
            raise ValueError("the idempotent producer requires kafka_acks=all")
        if self.kafka_security_protocol == "SSL":
            for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
                path = getattr(self, name)
                if path is None or not path.is_file():
                    raise ValueError(f"{name} must name a readable file when "
                                     "kafka_security_protocol is SSL")
        if self.rulebook_path is not None and not self.rulebook_path.is_file():
            raise ValueError(f"rulebook_path {self.rulebook_path} is not a file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix="", case_sensitive=False)
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings
