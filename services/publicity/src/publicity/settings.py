from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class PublicitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PUBLICITY_", frozen=True)

    http_port: int = 8083
    #: The built-in scheduler sends the round commands; switch it off when an external cron
    #: sends them instead (both would be harmless, but one owner is clearer).
    scheduler_enabled: bool = True
    scheduler_interval_seconds: float = Field(60.0, gt=0)
