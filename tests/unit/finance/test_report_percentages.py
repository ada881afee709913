"""Budget consumption as a percentage in finance's report: a negative consumption (a
December claim reversed in January, booked in the new budget year) is shown as far below
0 as the same positive one is above, truncated toward zero like every amount."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.claims.reports import basis_points
from vtp.tables import _number, cell, euros, percent

SHAPE = re.compile(r"^-?\d+\.\d\d$")
cents = st.integers(min_value=-(10**13), max_value=10**13)
budgets = st.integers(min_value=1, max_value=10**13)


def test_a_small_reversal_in_a_new_budget_year() -> None:
    used, budget = -1_250, 5_000_000  # -12.50 EUR of a 50,000 EUR line
    points = basis_points(used, budget)
    assert points == -2  # -2.5, truncated toward zero (floor division gave -3)
    assert cell("consumed_basis_points", points) == "-0.02"  # was "-1.97"


def test_negative_basis_points_are_formatted_with_the_sign_apart() -> None:
    assert cell("consumed_basis_points", -150) == "-1.50"  # was "-2.50"
    assert cell("consumed_basis_points", -5) == "-0.05"
    assert cell("consumed_basis_points", 1234) == "12.34"
    assert cell("consumed_basis_points", 0) == "0.00"
    assert cell("consumed_basis_points", None) == ""


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_a_percentage_reads_back_as_exactly_its_basis_points(points: int) -> None:
    shown = percent(points)
    assert SHAPE.match(shown), shown
    assert shown != "-0.00"
    assert Decimal(shown) == Decimal(points) / 100
    assert _number(shown) == Decimal(points) / 100  # as the XLSX sheet gets it
    assert percent(abs(points)) == shown.removeprefix("-")  # the sign is apart
    assert shown == euros(points)  # one rule for every figure with two decimals


@given(cents, budgets)
def test_consumption_is_truncated_toward_zero_and_symmetric(used: int, budget: int) -> None:
    points = basis_points(used, budget)
    # |points| is the largest whole number of basis points not above the exact share.
    assert abs(points) * budget <= abs(used) * 10_000 < (abs(points) + 1) * budget
    assert points == 0 or (points < 0) == (used < 0)
    assert basis_points(-used, budget) == -points
    shown = cell("consumed_basis_points", points)
    assert Decimal(shown) * 100 == points
