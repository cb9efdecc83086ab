from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class JurySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JURY_", frozen=True)

    http_port: int = 8084
