"""The retention period may not remove what the silent-device check still reads."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.notifications.settings import NotificationsSettings

TOKEN = SecretStr("x" * 40)


def test_the_default_keeps_deliveries_half_a_year() -> None:
    settings = NotificationsSettings(database_url="postgresql://h/db", api_token_secret=TOKEN)
    assert settings.retention_days == 180


@pytest.mark.parametrize(("days", "silent_hours"), [(30, 24), (60, 24 * 60), (60, 24 * 52)])
def test_a_retention_shorter_than_what_is_read_is_refused(days: int, silent_hours: int) -> None:
    with pytest.raises(ValidationError):
        NotificationsSettings(
            database_url="postgresql://h/db",
            api_token_secret=TOKEN,
            retention_days=days,
            device_silent_hours=silent_hours,
        )


def test_the_device_days_outlive_the_slowest_alarm() -> None:
    """A device is judged by the 4 weeks before it fell silent, and a device that works one
    day a week is told only once it missed device_silent_hours of those days: 4 days of
    silence are up to 5 such days, 5 weeks later, beyond a 60-day retention."""
    settings = NotificationsSettings(
        database_url="postgresql://h/db",
        api_token_secret=TOKEN,
        retention_days=60,
        device_silent_hours=72,
    )
    assert settings.retention_days == 60
    with pytest.raises(ValidationError, match="must exceed 64 days"):
        NotificationsSettings(
            database_url="postgresql://h/db",
            api_token_secret=TOKEN,
            retention_days=60,
            device_silent_hours=96,
        )
