"""Which earlier visits the check-in handler reads for the frequency limits: never one that
a limit could count may be left out, and none is read twice."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.claims.frequency import period_of, reach_days, visit_windows
from services.claims.policy import FrequencyLimit, LimitPeriod, LimitScope
from shared.localtime import business_day

HOLDERS = [uuid.UUID(int=1), uuid.UUID(int=2)]
# Around the DST changes of 2026 (29 March, 25 October) and a month boundary.
moments = st.datetimes(
    min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)
)
periods = st.sampled_from(list(LimitPeriod))


def _limit(period: LimitPeriod) -> FrequencyLimit:
    return FrequencyLimit(per=LimitScope.ANY, period=period, max_checkins=1)


@given(
    checkins=st.lists(st.tuples(st.sampled_from(HOLDERS), moments), min_size=1, max_size=12),
    visit=st.tuples(st.sampled_from(HOLDERS), moments),
    limit_periods=st.lists(periods, min_size=1, max_size=3),
)
def test_every_visit_a_limit_can_count_is_in_a_window(
    checkins: list[tuple[uuid.UUID, datetime]],
    visit: tuple[uuid.UUID, datetime],
    limit_periods: list[LimitPeriod],
) -> None:
    windows = visit_windows(checkins, reach_days(_limit(p) for p in limit_periods))
    holder, at = visit
    counted = any(
        h == holder and start <= business_day(at) <= end
        for h, moment in checkins
        for period in limit_periods
        for start, end in [period_of(period, business_day(moment))]
    )
    inside = [w for w in windows if w[0] == holder and w[1] <= at <= w[2]]
    if counted:
        assert len(inside) == 1
    assert len(inside) <= 1  # disjoint: a visit is never read twice


@given(checkins=st.lists(st.tuples(st.sampled_from(HOLDERS), moments), min_size=1, max_size=12))
def test_windows_of_one_holder_are_disjoint_and_ordered(
    checkins: list[tuple[uuid.UUID, datetime]],
) -> None:
    windows = visit_windows(checkins, reach_days([_limit(LimitPeriod.WEEK)]))
    for holder in HOLDERS:
        mine = [(start, end) for h, start, end in windows if h == holder]
        assert all(start < end for start, end in mine)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(mine))


def test_a_daily_limit_reads_days_not_months() -> None:
    at = datetime(2026, 6, 15, 12, tzinfo=UTC)
    (window,) = visit_windows([(HOLDERS[0], at)], reach_days([_limit(LimitPeriod.DAY)]))
    assert window[2] - window[1] == timedelta(days=4)
    assert reach_days([]) == 0
    assert reach_days([_limit(LimitPeriod.MONTH), _limit(LimitPeriod.DAY)]) == 30
