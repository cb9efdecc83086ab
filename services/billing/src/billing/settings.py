from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", frozen=True)

    http_port: int = 8085
    #: Payers hash to this many shards; instruction batches are keyed by shard so one
    #: payer's instructions stay on one partition, in order.
    shards: int = Field(64, ge=1, le=65_536)
    instructions_per_batch: int = Field(500, ge=1, le=10_000)
