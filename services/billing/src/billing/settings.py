from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", frozen=True)

    http_port: int = 8085
    #: The roll projection writes a consumed batch in one statement: large batches keep
    #: up with membership's event stream (the workers take one shard at a time anyway).
    consumer_max_records: int = Field(5_000, ge=1, le=10_000)
    #: ``all``: coordinator and worker in one process (the default, and what `make run`
    #: starts); ``coordinator``: commands, projections and results only; ``worker``: prices
    #: shards only. SREs scale a sharing run by adding ``worker`` processes (docs/billing.md).
    role: Literal["all", "coordinator", "worker"] = "all"
    #: Shard tasks per period: each prices a contiguous range of the roll's 1,024 payer
    #: buckets. More tasks than workers keep every worker busy until the end of a run;
    #: the number never changes anyone's charge.
    shard_tasks: int = Field(64, ge=1, le=1024)
    instructions_per_batch: int = Field(500, ge=1, le=10_000)
