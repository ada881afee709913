from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt
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
    # Seconds between looks at the ledger for budget lines nearing their limit (finance is
    # told at these percentages of a line's budget, services/claims/budget_watch.py);
    # 0 = never.
    budget_watch_interval_s: float = 60
    budget_thresholds_percent: tuple[PositiveInt, ...] = Field(default=(80, 100), min_length=1)
    # The deployment's operations token (CLAIMS_API_TOKEN_SECRET); the API's every route but
    # the health probes needs it. Required: unset, the service refuses to start.
    api_token_secret: OperationsSecret
