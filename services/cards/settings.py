from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CardsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CARDS_", extra="ignore")

    database_url: str
    http_port: int = 8001
    # Personal data is encrypted with a key per person, wrapped by this master key (hex).
    master_key: str = Field(min_length=64, max_length=64)
    # Sealed-box public keys of the services that may read a holder's details.
    finance_public_key: str
    notifications_public_key: str
    card_number_prefix: str = Field(default="6299", pattern=r"^\d{4}$")
