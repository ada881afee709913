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
