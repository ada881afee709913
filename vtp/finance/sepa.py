"""The SEPA credit-transfer file (ISO 20022 pain.001.001.09) for a set of payments, built
with `sepaxml` and validated against the pain.001.001.09 XSD that sepaxml ships.

Each payment becomes one transaction: end-to-end id = the payment id (so the bank's answer
maps back to it), remittance = the remittance text that carries the Belgian OGM.

Names and remittance are written in the SEPA character set only (the EPC's basic Latin:
a-z A-Z 0-9 / - ? : ( ) . , ' + space), which every bank in the scheme accepts: a bank may
refuse a file with other characters. The requested execution date is a TARGET business day:
a file made on a weekend or a TARGET holiday asks for the next one."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import sepaxml
import xmlschema
from sepaxml import SepaTransfer
from text_unidecode import unidecode  # what sepaxml transliterates with

SCHEMA = "pain.001.001.09"
XSD = Path(sepaxml.__file__).parent / "schemas" / f"{SCHEMA}.xsd"


@dataclass(frozen=True)
class Debtor:
    """The municipality's own account, from which finance pays."""

    name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class CreditTransfer:
    payment_id: uuid.UUID
    creditor_name: str
    creditor_iban: str
    amount_cents: int
    remittance: str


NAME_LENGTH = 70  # EPC: a name is at most 70 characters (the XSD allows 140)
REMITTANCE_LENGTH = 140
_OUTSIDE_SEPA = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]+")
# The EPC's usual substitutes; any other character outside the set becomes a space.
_SUBSTITUTES = str.maketrans({"&": "+", "_": "-"})


def sepa_text(value: str, limit: int) -> str:
    """`value` in the SEPA character set: transliterated (é -> e, ß -> ss, 李 -> Li), the
    rest replaced, spaces collapsed, at most `limit` characters, no space at either end."""
    ascii_text: str = unidecode(value)
    ascii_text = ascii_text.translate(_SUBSTITUTES)
    return " ".join(_OUTSIDE_SEPA.sub(" ", ascii_text).split())[:limit].strip()


def readable_name(name: str) -> bool:
    """Whether a name says anything once written in the SEPA character set (a transfer
    without a creditor name breaks the file for every payment in it)."""
    return re.search(r"[A-Za-z0-9]", sepa_text(name, NAME_LENGTH)) is not None


_TARGET_HOLIDAYS = ((1, 1), (5, 1), (12, 25), (12, 26))


def _easter(year: int) -> date:
    """Easter Sunday (Gregorian; the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def execution_day(day: date) -> date:
    """`day`, or the first TARGET business day after it: the SEPA credit transfers are
    settled on TARGET days only (no weekend, New Year, Good Friday, Easter Monday, 1 May,
    25 and 26 December)."""
    while True:
        easter = _easter(day.year)
        closed = (
            day.weekday() >= 5
            or (day.month, day.day) in _TARGET_HOLIDAYS
            or day in (easter - timedelta(days=2), easter + timedelta(days=1))
        )
        if not closed:
            return day
        day += timedelta(days=1)


def build_pain001(debtor: Debtor, transfers: list[CreditTransfer], execution_date: date) -> bytes:
    if not transfers:
        raise ValueError("a credit-transfer file needs at least one payment")
    if not readable_name(debtor.name) or not all(readable_name(t.creditor_name) for t in transfers):
        # Checked before: vtp/finance/export.py keeps such a payee's payments pending.
        raise ValueError("a name has no letter or digit in the SEPA character set")
    sepa = SepaTransfer(
        {
            "name": sepa_text(debtor.name, NAME_LENGTH),
            "IBAN": debtor.iban,
            "BIC": debtor.bic,
            "batch": True,
            "currency": "EUR",
        },
        schema=SCHEMA,
        clean=True,
    )
    for t in transfers:
        sepa.add_payment(
            {
                "name": sepa_text(t.creditor_name, NAME_LENGTH),
                "IBAN": t.creditor_iban,
                "amount": t.amount_cents,
                "execution_date": execution_date,
                "description": sepa_text(t.remittance, REMITTANCE_LENGTH),
                "endtoend_id": t.payment_id.hex,
            }
        )
    xml: bytes = sepa.export(validate=False)
    validate_pain001(xml)
    return xml


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def validate_pain001(xml: bytes) -> None:
    """Raises xmlschema.XMLSchemaValidationError when the file breaks the XSD."""
    _schema().validate(xml.decode())
