from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.api_auth import OperationsSecret
from shared.settings import ServiceSettings

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.toml"


class ClaimsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMS_", extra="ignore")

    http_port: int = 8002
    policy_file: Path = DEFAULT_POLICY
    # Seconds between automatic payment runs; 0 = only on command.
    payment_run_interval_s: float = 0
    group_id: str = "claims"
    # The deployment's operations token (CLAIMS_API_TOKEN_SECRET); the API's every route but
    # the health probes needs it. Required: unset, the service refuses to start.
    api_token_secret: OperationsSecret
