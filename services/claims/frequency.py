"""Frequency limits ("once per activity per day", "twice a week at one provider", …): pure
counting over the holder's earlier approved, not reversed, check-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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
        # A provider names its own activities: another provider's "zwemmen" is another one.
        return a.activity_id == b.activity_id and a.provider_id == b.provider_id
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


def reach_days(limits: Iterable[FrequencyLimit]) -> int:
    """How many days apart a check-in and an earlier visit can be and still count against
    one of these limits: 0 for daily limits, 6 for weekly, 30 for monthly."""
    span = {LimitPeriod.DAY: 0, LimitPeriod.WEEK: 6, LimitPeriod.MONTH: 30}
    return max((span[limit.period] for limit in limits), default=0)


def visit_windows(
    moments: Iterable[tuple[uuid.UUID, datetime]], reach: int
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """Per holder, the disjoint time ranges whose visits can matter to check-ins at these
    moments: `reach` days either side plus two (a business day is a Belgian day, up to 25
    hours, not a UTC date), overlapping ranges merged so that no visit is read twice."""
    margin = timedelta(days=reach + 2)
    by_holder: dict[uuid.UUID, list[datetime]] = {}
    for holder, moment in moments:
        by_holder.setdefault(holder, []).append(moment)
    windows: list[tuple[uuid.UUID, datetime, datetime]] = []
    for holder, times in by_holder.items():
        times.sort()
        start, end = times[0] - margin, times[0] + margin
        for moment in times[1:]:
            if moment - margin <= end:
                end = moment + margin
            else:
                windows.append((holder, start, end))
                start, end = moment - margin, moment + margin
        windows.append((holder, start, end))
    return windows
