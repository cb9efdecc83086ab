from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class JurySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JURY_", frozen=True)

    http_port: int = 8084
    # Votes come in bursts (about 250,000 on one case in 5 hours), all on the case's
    # partition. A consumed batch costs a fixed number of round trips (fetch, a few
    # statements, commit, offset commit) whatever its size, so jury takes more per batch
    # than the platform's 500. Measured in make bench-jury (100,000 votes): 500 gave
    # 3,300-4,000 votes/s, 2,000 gave 4,200-5,100, 5,000 gave 6,400-6,800.
    consumer_max_records: int = Field(5_000, ge=1, le=10_000)
