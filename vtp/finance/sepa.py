"""The SEPA credit-transfer file (ISO 20022 pain.001.001.09) for a set of payments, built
with `sepaxml` and validated against the pain.001.001.09 XSD that sepaxml ships.

Each payment becomes one transaction: end-to-end id = the payment id (so the bank's answer
maps back to it), remittance = the remittance text that carries the Belgian OGM."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import sepaxml
import xmlschema
from sepaxml import SepaTransfer

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


def build_pain001(debtor: Debtor, transfers: list[CreditTransfer], execution_date: date) -> bytes:
    if not transfers:
        raise ValueError("a credit-transfer file needs at least one payment")
    sepa = SepaTransfer(
        {
            "name": debtor.name,
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
                "name": t.creditor_name,
                "IBAN": t.creditor_iban,
                "amount": t.amount_cents,
                "execution_date": execution_date,
                "description": t.remittance,
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
