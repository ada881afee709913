from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.cards.domain import eligibility as rules
from services.cards.domain.errors import Conflict, InvalidField

DAY = date(2026, 6, 15)
days = st.integers(min_value=0, max_value=400)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)), days, days, days)
def test_ended_exactly_after_grace(start: date, length: int, grace: int, offset: int) -> None:
    period = rules.Period(start, start + timedelta(days=length), grace)
    today = start + timedelta(days=offset)
    assert rules.has_ended(period, today) == (today > period.eligible_until + timedelta(days=grace))


@given(days, st.integers(min_value=1, max_value=365))
def test_extension_moves_only_the_end(length: int, more: int) -> None:
    period = rules.Period(DAY, DAY + timedelta(days=length), 30)
    longer = rules.extended(period, period.eligible_until + timedelta(days=more), DAY)
    assert longer.eligible_from == period.eligible_from
    assert longer.grace_days == 30
    assert longer.eligible_until - period.eligible_until == timedelta(days=more)


@given(st.integers(min_value=0, max_value=100))
def test_extension_must_end_later(earlier: int) -> None:
    period = rules.Period(DAY, DAY + timedelta(days=200))
    with pytest.raises(InvalidField) as refused:
        rules.extended(period, period.eligible_until - timedelta(days=earlier), DAY)
    assert refused.value.field == "eligible_until"


def test_period_refusals_name_the_field() -> None:
    with pytest.raises(InvalidField, match="eligible_until: 2026-06-14 is before eligible_from"):
        rules.check_period(DAY, DAY - timedelta(days=1), DAY)
    with pytest.raises(InvalidField, match="at most five years"):
        rules.check_period(DAY, DAY + timedelta(days=6 * 365), DAY)
    with pytest.raises(InvalidField, match="target_group: 'students' is not one of"):
        rules.check_target_group("students", ("poverty", "senior"))


@pytest.mark.parametrize(
    ("eligible_from", "eligible_until", "grace"),
    [
        (date(9999, 12, 1), date(9999, 12, 31), 30),  # end + grace would overflow
        (date(9999, 12, 1), date(9999, 12, 31), 0),
        (DAY + timedelta(days=3650), DAY + timedelta(days=3700), 0),
    ],
)
def test_a_grant_may_not_reach_beyond_ten_years(
    eligible_from: date, eligible_until: date, grace: int
) -> None:
    with pytest.raises(InvalidField, match=r"eligible_until: .*at most 10 years ahead"):
        rules.check_period(eligible_from, eligible_until, DAY, grace)


def test_the_ten_year_bound_counts_the_grace_days() -> None:
    latest = DAY + timedelta(days=rules.MAX_DAYS_AHEAD)
    start = latest - timedelta(days=400)
    rules.check_period(start, latest, DAY, 0)
    rules.check_period(start, latest - timedelta(days=30), DAY, 30)
    with pytest.raises(InvalidField, match="with 30 grace days"):
        rules.check_period(start, latest - timedelta(days=29), DAY, 30)
    period = rules.Period(start, latest - timedelta(days=100), 30)
    with pytest.raises(InvalidField, match="at most 10 years ahead"):
        rules.extended(period, latest - timedelta(days=29), DAY)


def test_no_card_on_an_ended_grant() -> None:
    period = rules.Period(DAY - timedelta(days=100), DAY - timedelta(days=10), 5)
    with pytest.raises(Conflict, match="extend it before issuing"):
        rules.check_can_issue_on(period, DAY)
    rules.check_can_issue_on(rules.Period(DAY, DAY, 0), DAY)


@pytest.mark.parametrize(
    ("until_offset", "expected"), [(-1, False), (0, True), (30, True), (31, False)]
)
def test_ends_soon_window(until_offset: int, expected: bool) -> None:
    period = rules.Period(DAY - timedelta(days=300), DAY + timedelta(days=until_offset))
    assert rules.ends_soon(period, DAY, 30) is expected


def test_an_extension_past_five_years_says_to_grant_a_new_period() -> None:
    period = rules.Period(date(2022, 1, 1), date(2026, 12, 31), 30)
    with pytest.raises(InvalidField) as refused:
        rules.extended(period, date(2027, 12, 31), date(2026, 11, 28))
    assert "grant a new period from 2027-01-01" in refused.value.message
    assert "extend it later" not in refused.value.message


def test_a_grant_starting_in_a_mistyped_year_is_refused() -> None:
    today = date(2026, 11, 28)
    rules.check_period(date(2022, 1, 1), date(2026, 12, 31), today)  # a long-running grant
    with pytest.raises(InvalidField, match="eligible_from: 0001-01-01 lies more than 6 years"):
        rules.check_period(date(1, 1, 1), date(1, 12, 31), today)
