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
    longer = rules.extended(period, period.eligible_until + timedelta(days=more))
    assert longer.eligible_from == period.eligible_from
    assert longer.grace_days == 30
    assert longer.eligible_until - period.eligible_until == timedelta(days=more)


@given(st.integers(min_value=0, max_value=100))
def test_extension_must_end_later(earlier: int) -> None:
    period = rules.Period(DAY, DAY + timedelta(days=200))
    with pytest.raises(InvalidField) as refused:
        rules.extended(period, period.eligible_until - timedelta(days=earlier))
    assert refused.value.field == "eligible_until"


def test_period_refusals_name_the_field() -> None:
    with pytest.raises(InvalidField, match="eligible_until: 2026-06-14 is before eligible_from"):
        rules.check_period(DAY, DAY - timedelta(days=1))
    with pytest.raises(InvalidField, match="at most five years"):
        rules.check_period(DAY, DAY + timedelta(days=6 * 365))
    with pytest.raises(InvalidField, match="target_group: 'students' is not one of"):
        rules.check_target_group("students", ("poverty", "senior"))


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
