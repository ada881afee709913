"""Frequency limits ("once per activity per day", "twice a week at one provider", …): pure
counting over the holder's earlier approved, not reversed, check-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.claims.policy import FrequencyLimit, LimitPeriod, LimitScope
from shared.events.checkins import ActivityCategory


@dataclass(frozen=True)
class Visit:
    """What a frequency limit looks at in one check-in."""

    day: date
    activity_id: str
    provider_id: uuid.UUID
    category: ActivityCategory


def period_of(period: LimitPeriod, day: date) -> tuple[date, date]:
    """The first and last day of the day's, week's or month's window."""
    if period is LimitPeriod.DAY:
        return day, day
    if period is LimitPeriod.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    start = day.replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following - timedelta(days=1)


def _same_scope(scope: LimitScope, a: Visit, b: Visit) -> bool:
    if scope is LimitScope.ACTIVITY:
        return a.activity_id == b.activity_id
    if scope is LimitScope.PROVIDER:
        return a.provider_id == b.provider_id
    if scope is LimitScope.CATEGORY:
        return a.category == b.category
    return True


def limit_reached(
    limits: Sequence[FrequencyLimit], earlier: Iterable[Visit], new: Visit
) -> FrequencyLimit | None:
    """The first limit that one more check-in like `new` would break, if any."""
    visits = list(earlier)
    for limit in limits:
        start, end = period_of(limit.period, new.day)
        count = sum(1 for v in visits if start <= v.day <= end and _same_scope(limit.per, v, new))
        if count >= limit.max_checkins:
            return limit
    return None


def widest_window_days() -> int:
    """How far around a check-in's day earlier visits can matter (a month at most)."""
    return 31
