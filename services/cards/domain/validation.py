"""Parsing what referrers type: national register numbers (or BIS numbers), IBANs, birth
dates, contact channels. Every refusal names the field and the reason, and never repeats
the value (it is personal data)."""

from __future__ import annotations

from datetime import date
from types import ModuleType

from schwifty import IBAN
from schwifty import exceptions as iban_errors
from stdnum import exceptions as stdnum_errors
from stdnum.be import bis, nn

from services.cards.domain.errors import InvalidField

OLDEST_BIRTH_YEAR = 1900

_NN_REASONS: dict[type[Exception], str] = {
    stdnum_errors.InvalidLength: "must have 11 digits",
    stdnum_errors.InvalidFormat: "must contain only digits (dots, dashes and spaces are allowed)",
    stdnum_errors.InvalidChecksum: "the check digits do not match the number",
    stdnum_errors.InvalidComponent: "the first six digits are not a valid birth date",
}
# A BIS number (for people not in the national register) adds 20 or 40 to the birth month.
_BIS_REASONS: dict[type[Exception], str] = {
    **_NN_REASONS,
    stdnum_errors.InvalidComponent: "the first six digits are not a valid birth date"
    " (a BIS number's month is 20-32 or 40-52)",
}
_IBAN_REASONS: dict[type[Exception], str] = {
    iban_errors.InvalidChecksumDigits: "the check digits do not match the account number",
    iban_errors.InvalidLength: "has the wrong length for its country",
    iban_errors.InvalidStructure: "contains characters an IBAN cannot have",
    iban_errors.InvalidCountryCode: "starts with an unknown country code",
    iban_errors.InvalidBBANChecksum: "the national account number's check digits do not match",
    iban_errors.InvalidBankCode: "names a bank code that does not exist",
}


def _looks_like_bis(value: str) -> bool:
    compact = bis.compact(value)
    # isascii too: str.isdigit() also accepts "²" and other digits int() cannot read.
    return (
        len(compact) == 11 and compact.isascii() and compact.isdigit() and int(compact[2:4]) >= 20
    )


def parse_national_number(value: str, date_of_birth: date | None = None) -> str:
    """The compact 11-digit form of a national register number or a BIS number (both are
    INSZ numbers and are handled alike); refuses a number that disagrees with the birth
    date."""
    kind, reasons = (bis, _BIS_REASONS) if _looks_like_bis(value) else (nn, _NN_REASONS)
    try:
        number = str(kind.validate(value))
    except stdnum_errors.ValidationError as exc:
        reason = next(
            (text for error, text in reasons.items() if isinstance(exc, error)),
            "is not a valid Belgian national register or BIS number",
        )
        raise InvalidField("national_number", reason) from None
    if date_of_birth is not None and not _birth_date_agrees(kind, number, date_of_birth):
        raise InvalidField("national_number", "does not match date_of_birth")
    return number


def _birth_date_agrees(kind: ModuleType, number: str, date_of_birth: date) -> bool:
    """Compares what the number knows of the birth date: all of it, or only the year and
    month (day 00), or only the year (month 00: unknown, or the day's counter ran out), or
    nothing (the fictitious 1900-00-01 or 2000-00-01)."""
    year, month = kind.get_birth_year(number), kind.get_birth_month(number)
    born = kind.get_birth_date(number)
    return (
        (year is None or year == date_of_birth.year)
        and (month is None or month == date_of_birth.month)
        and (born is None or born == date_of_birth)
    )


def parse_iban(value: str) -> str:
    if not value.strip():
        # Schwifty would call an empty string malformed; the caller meant "no account".
        raise InvalidField("iban", "is empty: leave it out when there is no bank account")
    try:
        iban = IBAN(value)
    except iban_errors.SchwiftyException as exc:
        reason = next(
            (text for kind, text in _IBAN_REASONS.items() if isinstance(exc, kind)),
            "is not a valid IBAN",
        )
        raise InvalidField("iban", reason) from None
    if not iban.in_sepa_zone:
        # Refunds leave as a SEPA credit transfer (pain.001): an account outside the zone
        # would only fail at the bank, weeks later, with the holder still waiting.
        raise InvalidField("iban", "is outside the SEPA zone; refunds are paid by SEPA transfer")
    return str(iban.compact)


def check_birth_date(value: date, today: date) -> None:
    if value > today:
        raise InvalidField("date_of_birth", "lies in the future")
    if value.year < OLDEST_BIRTH_YEAR:
        raise InvalidField("date_of_birth", f"lies before {OLDEST_BIRTH_YEAR}")


def default_channel(email: str | None, address: str | None) -> str:
    """The channel when none is chosen: the contact detail that was given."""
    if email:
        return "email"
    if address and address.strip():
        return "letter"
    return "none"


def check_reachable(channel: str, email: str | None, address: str | None) -> None:
    """A holder on a channel must have its contact detail, or they are never told anything."""
    if channel == "email" and not email:
        raise InvalidField("email", "is required for channel email (or choose channel letter)")
    if channel == "letter" and not (address and address.strip()):
        raise InvalidField("address", "is required for channel letter (or choose channel email)")
