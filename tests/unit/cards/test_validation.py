"""National numbers and IBANs: valid ones pass in any common notation, wrong ones are refused
naming the field and the reason, and the refusal never repeats the value."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.cards.domain.errors import InvalidField
from services.cards.domain.validation import (
    check_birth_date,
    check_reachable,
    default_channel,
    parse_iban,
    parse_national_number,
)
from vtp.demo.municipality import iban, national_number

births = st.dates(min_value=date(1920, 1, 1), max_value=date(2025, 12, 31))


@given(births, st.integers(min_value=0, max_value=10**6))
def test_valid_numbers_in_any_notation(born: date, seed: int) -> None:
    number = national_number(random.Random(seed), born)
    dotted = f"{number[:2]}.{number[2:4]}.{number[4:6]}-{number[6:9]}.{number[9:]}"
    assert parse_national_number(number, born) == number
    assert parse_national_number(dotted, born) == number
    assert parse_national_number(f" {number[:6]} {number[6:]} ") == number


@given(births, st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10))
def test_a_changed_digit_is_refused_without_echo(born: date, seed: int, position: int) -> None:
    number = national_number(random.Random(seed), born)
    changed = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]
    with pytest.raises(InvalidField) as refused:
        parse_national_number(changed, born)
    assert refused.value.field == "national_number"
    assert changed not in refused.value.message and number not in refused.value.message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("8501011234", "must have 11 digits"),
        ("85010112345", "check digits"),
        ("85O10112345", "must contain only digits"),
        # Month 13 with matching check digits: the date part is what is wrong.
        ("851301123" + f"{97 - 851301123 % 97:02d}", "birth date"),
    ],
)
def test_national_number_reasons(value: str, reason: str) -> None:
    with pytest.raises(InvalidField, match=reason):
        parse_national_number(value)


def test_national_number_must_match_birth_date() -> None:
    number = national_number(random.Random(1), date(1985, 3, 4))
    with pytest.raises(InvalidField, match="national_number: does not match date_of_birth"):
        parse_national_number(number, date(1985, 3, 5))


@given(st.integers(min_value=0, max_value=10**6))
def test_ibans(seed: int) -> None:
    value = iban(random.Random(seed))
    grouped = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    assert parse_iban(grouped.lower()) == value
    broken = value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:]
    with pytest.raises(InvalidField) as refused:
        parse_iban(broken)
    assert refused.value.field == "iban"
    assert broken not in refused.value.message


@pytest.mark.parametrize(
    ("value", "reason"),
    [("BE68 5390 0754 7035", "check digits"), ("BE685390075470", "length"), ("ZZ12", "")],
)
def test_iban_reasons(value: str, reason: str) -> None:
    with pytest.raises(InvalidField, match=f"iban: .*{reason}"):
        parse_iban(value)


def test_birth_dates() -> None:
    check_birth_date(date(1950, 1, 1), date(2026, 1, 1))
    with pytest.raises(InvalidField, match="date_of_birth: lies in the future"):
        check_birth_date(date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(InvalidField, match="date_of_birth: lies before 1900"):
        check_birth_date(date(1899, 12, 31), date(2026, 1, 1))


@pytest.mark.parametrize(
    ("value", "born"),
    [
        ("01490700185", date(2001, 9, 7)),  # BIS number, gender known (month + 40)
        ("01.49.07-001.85", date(2001, 9, 7)),
        ("98472899765", date(1998, 7, 28)),  # month + 40
        ("85231500140", date(1985, 3, 15)),  # month + 20: gender unknown
        ("85200100151", None),  # month 20 + 0: birth date not known
    ],
)
def test_bis_numbers_are_accepted(value: str, born: date | None) -> None:
    compact = value.replace(".", "").replace("-", "")
    assert parse_national_number(value, born) == compact


def test_bis_number_refusals_name_the_reason() -> None:
    with pytest.raises(InvalidField, match="national_number: does not match date_of_birth"):
        parse_national_number("01490700185", date(2001, 9, 8))
    with pytest.raises(InvalidField, match="national_number: the check digits do not match"):
        parse_national_number("01490700186")
    # Month 35 (neither a national number's 1-12 nor a BIS number's 20-32/40-52).
    with pytest.raises(InvalidField, match=r"not a valid birth date .*BIS"):
        parse_national_number("01350700155")


def test_a_channel_needs_its_contact_detail() -> None:
    check_reachable("email", "an@example.org", None)
    check_reachable("letter", None, "Kerkstraat 1")
    check_reachable("none", None, None)
    with pytest.raises(InvalidField, match="email: is required for channel email"):
        check_reachable("email", None, "Kerkstraat 1")
    with pytest.raises(InvalidField, match="address: is required for channel letter"):
        check_reachable("letter", "an@example.org", "  ")
    assert default_channel("an@example.org", "Kerkstraat 1") == "email"
    assert default_channel(None, "Kerkstraat 1") == "letter"
    assert default_channel(None, None) == "none"


@pytest.mark.parametrize("value", ["85²73003328", "٨٥٠٧٣٠٠٣٣٢٨", "85\x0073003328"])
def test_digits_other_than_ascii_are_refused_not_a_crash(value: str) -> None:
    # str.isdigit() accepts "²" and Arabic-Indic digits, which int() cannot always read.
    with pytest.raises(InvalidField, match="national_number: must contain only digits"):
        parse_national_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "BR1800360305000010009795493C1",
        "EG380019000500000000263180002",
        "KW81CBKU0000000000001234560101",
    ],
)
def test_an_account_outside_the_sepa_zone_is_refused(value: str) -> None:
    with pytest.raises(InvalidField, match="iban: is outside the SEPA zone"):
        parse_iban(value)


@pytest.mark.parametrize("value", ["CH9300762011623852957", "GB33BUKB20201555555555"])
def test_sepa_accounts_outside_the_eu_are_accepted(value: str) -> None:
    assert parse_iban(value) == value


def _with_check_digits(first_nine: str, born_after_1999: bool = False) -> str:
    base = int(("2" if born_after_1999 else "") + first_nine)
    return f"{first_nine}{97 - base % 97:02d}"


@pytest.mark.parametrize(
    ("first_nine", "known"),
    [
        ("850700123", "year and month"),  # day 00: the day was not known
        ("850000123", "year"),  # month 00: month and day not known (or the counter ran out)
        ("852700123", "year and month"),  # BIS, month + 20, day not known
        ("854000123", "year"),  # BIS, month + 40 with month 00
    ],
)
def test_a_partly_known_birth_date_must_still_match(first_nine: str, known: str) -> None:
    """A number that knows only part of the birth date is still checked on that part: 1985
    (or July 1985) is not 5 March 1962."""
    number = _with_check_digits(first_nine)
    with pytest.raises(InvalidField, match="national_number: does not match date_of_birth"):
        parse_national_number(number, date(1962, 3, 5))
    month = 7 if known == "year and month" else 3
    assert parse_national_number(number, date(1985, month, 5)) == number


def test_a_wholly_unknown_birth_date_matches_any() -> None:
    number = _with_check_digits("000001123")  # the fictitious 1900-00-01: nothing known
    assert parse_national_number(number, date(1962, 3, 5)) == number
