from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.notifications.signals import device_days_read_back
from shared.api_auth import OperationsSecret
from shared.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    http_port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_timeout_s: float = 10
    # SMTP connections a delivery pass uses at once (mail providers allow a few per client).
    smtp_sessions: int = Field(default=4, ge=1, le=32)
    mail_from: str = "vrijetijdspas@heist-op-den-berg.be"
    # The deployment's operations token (NOTIFICATIONS_API_TOKEN_SECRET); the API's every
    # route but the health probes needs it. Required: unset, the service refuses to start.
    api_token_secret: OperationsSecret
    # Opens the contact details the cards service seals for us (base64url X25519 key).
    private_key: str | None = None

    # Delivery: transient failures wait base·2^(attempt-1) seconds (capped), then give up.
    # With these, a delivery is tried for a day (2 s, 4 s, … then hourly): a mail relay's
    # maintenance or a partner's outage of some hours loses nobody's message.
    max_attempts: int = 35
    retry_base_s: float = 2.0
    retry_max_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    # Each partner's Standard Webhooks secret is derived from this one (see webhooks.py).
    # Required outside the dev environment: no default secret in production.
    webhook_master_secret: str = ""

    # Signals.
    unused_after_days: int = 90
    eligibility_warning_days: int = 30
    # A device is silent when it missed this many hours of the weekdays it usually works
    # (signals.routine: learnt from the 4 weeks before its last heartbeat); silence on its
    # usual closed days does not count.
    device_silent_hours: int = 24
    # And only a device heard on at least this many days of those 4 weeks: a device used
    # once a month has no routine, and raises no alarm. (Before routines were learnt, this
    # counted the 7 days before the device went silent.)
    device_usual_active_days: int = 3
    # A device's provider is told (device_clock_off, once per episode) when a heartbeat says
    # its clock is off by more than this; the episode ends when one says it is within half
    # of it. Claims refuses a check-in more than 300 s ahead (the default policy) for good:
    # 120 s leaves a drifting clock (seconds a day) weeks to be set right before that
    # begins, and one that jumped (a wrong time zone, a kiosk at 1970) is told at its first
    # heartbeat either way. Behind, 120 s misplaces only a visit scanned in the two minutes
    # after midnight on the day before. Well above what a device measures its offset to (the
    # reference client, ±0.5 s; it corrects its own check-ins from 30 s).
    device_clock_off_s: int = Field(default=120, ge=10, le=300)
    # Used when no organisation of kind "finance" is registered.
    finance_email: str | None = None

    # Scheduling: how often the background scheduler looks, and from what local hour the
    # daily batches (referrer digest, letters) go out.
    scheduler_interval_s: float = 300
    daily_batch_hour: int = 7
    letters_dir: Path = Path(".vtp/letters")

    # Retention: a delivery that is over keeps its address, subject, body and payload this
    # many days, then only what the delivery log counts; device_days and job_runs rows older
    # than this are removed. At least 60: a month's statement job must still find its run.
    retention_days: int = Field(default=180, ge=60)
    # Rows per transaction of the retention job: short locks, however much is due.
    retention_batch: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _device_days_outlive_silence(self) -> NotificationsSettings:
        # A silent device is judged by its routine, the 4 weeks of device_days before its
        # last heartbeat, and told once it missed device_silent_hours of its usual days: for
        # a device that works one day a week, weeks later. Those days must still be there.
        needed = device_days_read_back(self.device_silent_hours)
        if self.retention_days <= needed:
            raise ValueError(
                f"NOTIFICATIONS_RETENTION_DAYS must exceed {needed} days with"
                f" device_silent_hours={self.device_silent_hours}: the silent-device check"
                " reads a device's 4 weeks before it fell silent, up to"
                " 7 days per 23 silent hours later (signals.device_days_read_back)"
            )
        return self

    @model_validator(mode="after")
    def _secret_outside_dev(self) -> NotificationsSettings:
        if not self.webhook_master_secret:
            if self.environment != "dev":
                raise ValueError("NOTIFICATIONS_WEBHOOK_MASTER_SECRET is required outside dev")
            self.webhook_master_secret = "dev-only-webhook-master-secret"  # noqa: S105
        return self
