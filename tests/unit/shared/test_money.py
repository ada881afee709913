from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import format_eur, percent_of


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "€ 0,00"),
        (1250, "€ 12,50"),
        (5, "€ 0,05"),
        (123405, "€ 1.234,05"),
        (100000000, "€ 1.000.000,00"),
        (-300, "-€ 3,00"),
    ],
)
def test_belgian_notation(cents: int, text: str) -> None:
    assert format_eur(cents) == text


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_formatting_round_trips(cents: int) -> None:
    text = format_eur(cents)
    digits = text.replace("-", "").replace("€ ", "").replace(".", "").replace(",", "")
    assert int(digits) * (-1 if cents < 0 else 1) == cents


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10_000))
def test_percentage_is_exact_half_up_and_bounded(amount: int, bp: int) -> None:
    result = percent_of(amount, bp)
    assert 0 <= result <= amount
    # Half-up rounding: the exact value is within half a cent of the result.
    assert abs(result * 10_000 - amount * bp) <= 5_000


def test_half_cent_rounds_up() -> None:
    assert percent_of(1, 5_000) == 1  # 0.5 cent → 1
    assert percent_of(3, 5_000) == 2  # 1.5 cents → 2


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        percent_of(-1, 100)
