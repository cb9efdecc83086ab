from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from mutualaid.runtime import ServiceSettings


class MembershipSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEMBERSHIP_", frozen=True)

    http_port: int = 8081
    # Key of the keyed hash under which national ID numbers are stored and looked up.
    # Production injects it from a secret; changing it orphans every stored hash.
    id_hash_key: SecretStr = SecretStr("development-only-id-hash-key")
