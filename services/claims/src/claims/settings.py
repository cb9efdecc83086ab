from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class ClaimsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMS_", frozen=True)

    http_port: int = 8082
