"""The structured reference (Belgian OGM/VCS) of a payment, checked against python-stdnum."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.be import ogm_vcs

from services.claims.payments import structured_reference
from shared.events.payments import OGM_PATTERN


@given(st.integers(0, 10**10 - 1))
def test_a_reference_is_its_number_in_ten_digits_with_valid_check_digits(number: int) -> None:
    reference = structured_reference(number)
    assert re.fullmatch(OGM_PATTERN, reference)
    digits = ogm_vcs.validate(reference)  # raises on a bad length or check digits
    assert int(digits[:10]) == number
    assert int(digits[10:]) == (number % 97 or 97)


def test_known_references() -> None:
    assert structured_reference(108068171) == "+++010/8068/17183+++"  # stdnum's example
    assert structured_reference(97) == "+++000/0000/09797+++"  # mod 97 = 0 gives 97


@pytest.mark.parametrize("number", [-1, 10**10])
def test_a_number_outside_ten_digits_is_refused(number: int) -> None:
    with pytest.raises(ValueError, match="10 digits"):
        structured_reference(number)
