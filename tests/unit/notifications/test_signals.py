from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from services.notifications.outcomes import http_outcome, smtp_outcome, without_addresses
from services.notifications.schedule import due_jobs
from services.notifications.signals import (
    Routine,
    is_silent,
    notification_key,
    previous_month,
    retry_delay_s,
)
from services.notifications.webhooks import partner_secret, signed_headers, webhook_body


@given(attempt=st.integers(min_value=1, max_value=40))
def test_backoff_grows_exponentially_and_is_capped(attempt: int) -> None:
    delay = retry_delay_s(attempt, 2.0, 600.0)
    assert 2.0 <= delay <= 600.0
    assert retry_delay_s(attempt + 1, 2.0, 600.0) >= delay
    if attempt < 8:
        assert delay == 2.0 * 2 ** (attempt - 1)


def test_silence_needs_a_usually_active_device() -> None:
    # (Routines, and silence on usual closed days: test_device_routine.py.)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    every_day = frozenset(range(7))
    assert is_silent(now - timedelta(hours=25), now, 24, Routine(every_day, 5), usual_days=3)
    assert not is_silent(now - timedelta(hours=25), now, 24, Routine(every_day, 1), usual_days=3)
    assert not is_silent(now - timedelta(hours=2), now, 24, Routine(every_day, 7), usual_days=3)


def test_http_and_smtp_outcomes() -> None:
    assert http_outcome(204).sent
    assert http_outcome(410).permanent and "410" in http_outcome(410).error
    assert not http_outcome(503).permanent and not http_outcome(503).sent
    assert not http_outcome(429).permanent
    assert smtp_outcome(550, "no such user").permanent
    assert not smtp_outcome(451, "try later").permanent


def test_keys_and_periods() -> None:
    assert notification_key("a", 1) == notification_key("a", 1) != notification_key("a", 2)
    assert previous_month(date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))
    jobs = dict(due_jobs(datetime(2026, 11, 27, 5, tzinfo=UTC), batch_hour=7))
    assert "referrer-digests" not in jobs  # 06:00 in Brussels: too early for the batch
    jobs = dict(due_jobs(datetime(2026, 11, 27, 9, tzinfo=UTC), batch_hour=7))
    assert jobs["letters"] == "2026-11-27" and jobs["provider-statements"] == "2026-11"


def test_webhook_signature_verifies_with_the_reference_library() -> None:
    secret = partner_secret("master", "org:1")
    assert base64.b64decode(secret.removeprefix("whsec_"))
    assert partner_secret("master", "org:2") != secret
    now = datetime.now(UTC)
    body = webhook_body("card_issued", {"card_number": "1234567890128"}, now)
    headers = signed_headers(secret, "msg_1", body, now)
    assert Webhook(secret).verify(body, headers)["data"] == {"card_number": "1234567890128"}


def test_addresses_are_kept_out_of_logs() -> None:
    assert without_addresses("550 <an.peeters@example.org> unknown") == "550 <<address>> unknown"
