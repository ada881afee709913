from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    database_url: str
    http_port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_timeout_s: float = 10
    mail_from: str = "vrijetijdspas@heist-op-den-berg.be"
    # Opens the contact details the cards service seals for us (base64url X25519 key).
    private_key: str | None = None
    max_attempts: int = 8
