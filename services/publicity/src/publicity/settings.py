from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class PublicitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PUBLICITY_", frozen=True)

    http_port: int = 8083
