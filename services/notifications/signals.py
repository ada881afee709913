"""Signals derived from events: when a card counts as unused, a device as silent, a budget
line as crossing a threshold, and how long to wait before retrying. Pure functions."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

_KEY_NAMESPACE = uuid.UUID("0b5f3f6e-8f63-4a53-9d1c-5a0c2e7f4e21")


def notification_key(*parts: object) -> uuid.UUID:
    """A stable id for a notification not caused by one event (a scan, a digest, a
    threshold): the same facts give the same key, so a rerun cannot notify twice."""
    return uuid.uuid5(_KEY_NAMESPACE, "/".join(str(p) for p in parts))


def thresholds_crossed(
    spent_before_cents: int, spent_after_cents: int, budget_cents: int, thresholds: tuple[int, ...]
) -> list[int]:
    """Percentages of the budget that this spending step reached for the first time.

    Integer arithmetic: 80% of € 1.000,01 is reached at exactly 80.000,8 cents, i.e. when
    100·spent ≥ 80·budget — no rounding can announce it a cent early.
    """
    if budget_cents <= 0:
        return []
    return [
        t
        for t in thresholds
        if 100 * spent_before_cents < t * budget_cents <= 100 * spent_after_cents
    ]


def is_unused(last_use: datetime, now: datetime, after_days: int) -> bool:
    return now - last_use >= timedelta(days=after_days)


def ends_soon(eligible_until: date, today: date, warning_days: int) -> bool:
    return today <= eligible_until <= today + timedelta(days=warning_days)


def is_silent(
    last_seen: datetime, now: datetime, silent_hours: int, active_days_before: int, usual_days: int
) -> bool:
    """Silent for `silent_hours` while it was heard on at least `usual_days` of the week
    before: an alarm for a device that stopped, not for one that is rarely used."""
    return now - last_seen >= timedelta(hours=silent_hours) and active_days_before >= usual_days


def retry_delay_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff after the `attempt`-th failure (1-based): base, 2·base, 4·base…"""
    return float(min(base_s * 2 ** max(attempt - 1, 0), max_s))


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last
