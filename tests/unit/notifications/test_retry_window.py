"""How long a message keeps being tried: a mail relay's maintenance or a partner's deploy
of an hour must not give up on every message queued meanwhile (the card holder would then
hear nothing, unless an operator retries each one by hand)."""

from __future__ import annotations

from datetime import timedelta

from services.notifications.settings import NotificationsSettings
from services.notifications.signals import retry_delay_s


def _defaults() -> tuple[int, float, float]:
    fields = NotificationsSettings.model_fields
    return (
        int(fields["max_attempts"].default),
        float(fields["retry_base_s"].default),
        float(fields["retry_max_s"].default),
    )


def test_a_delivery_is_given_up_only_after_a_day_of_tries() -> None:
    attempts, base_s, max_s = _defaults()
    # The waits between the first try and the last one.
    window_s = sum(retry_delay_s(a, base_s, max_s) for a in range(1, attempts))
    assert timedelta(seconds=window_s) >= timedelta(hours=24)


def test_a_recovered_server_is_tried_again_within_the_hour() -> None:
    _, base_s, max_s = _defaults()
    assert retry_delay_s(100, base_s, max_s) <= 3600
    assert retry_delay_s(1, base_s, max_s) <= 10  # a passing hiccup costs seconds
