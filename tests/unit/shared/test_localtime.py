"""The municipality's days are Belgian days, also on the nights the clocks change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.localtime import LOCAL_TIME, business_day, until_next_day


def test_half_past_midnight_in_heist_is_already_the_next_day() -> None:
    assert str(business_day(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))) == "2026-11-28"


def test_the_wait_until_midnight_follows_the_clock_change() -> None:
    # 29 March 2026 has 23 hours in Brussels, 25 October 2026 has 25.
    assert until_next_day(datetime(2026, 3, 29, 0, 30, tzinfo=LOCAL_TIME)) == timedelta(
        hours=22, minutes=30
    )
    assert until_next_day(datetime(2026, 10, 25, 0, 30, tzinfo=LOCAL_TIME)) == timedelta(
        hours=24, minutes=30
    )


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_next_run_falls_just_after_the_next_local_midnight(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    wait = until_next_day(now, timedelta(minutes=1))
    assert timedelta(minutes=1) <= wait <= timedelta(hours=25, minutes=1)
    then = (now + wait).astimezone(LOCAL_TIME)
    assert business_day(then) == business_day(now) + timedelta(days=1)
    assert (then.hour, then.minute) == (0, 1)
