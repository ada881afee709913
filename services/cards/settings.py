from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CardsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CARDS_", extra="ignore")

    http_port: int = 8001
    # Personal data is encrypted with a key per person, wrapped by this master key (hex).
    master_key: str = Field(min_length=64, max_length=64)
    # Sealed-box public keys of the services that may read a holder's details.
    finance_public_key: str
    notifications_public_key: str
    card_number_prefix: str = Field(default="6299", pattern=r"^[0-9]{4}$")
    # The bootstrap administrator's bearer token: it issues every other token. Unset, only
    # tokens already in the database are accepted.
    api_token_secret: str | None = Field(default=None, min_length=32)
    # Target groups a referrer may grant; the first three come from the source municipality.
    target_groups: tuple[str, ...] = ("poverty", "disability", "senior")
    # How far ahead the daily job tells referrers that an eligibility ends.
    announce_ending_days: int = Field(default=30, ge=1, le=365)
    expiry_job_interval_s: float = Field(default=86_400, gt=0)
