"""Card numbers: 13 digits, the last a Luhn check digit, printed on the card and in its QR."""

from __future__ import annotations

import secrets

from stdnum import luhn
from stdnum.exceptions import ValidationError

CARD_NUMBER_LENGTH = 13


def new_card_number(prefix: str) -> str:
    body = prefix + "".join(
        str(secrets.randbelow(10)) for _ in range(CARD_NUMBER_LENGTH - 1 - len(prefix))
    )
    return body + luhn.calc_check_digit(body)


def is_valid_card_number(number: str) -> bool:
    if len(number) != CARD_NUMBER_LENGTH or not number.isdigit():
        return False
    try:
        luhn.validate(number)
    except ValidationError:
        return False
    return True


QR_PREFIX = "VTP:1:"


def qr_payload(card_number: str) -> str:
    """What the card's QR code holds: a versioned prefix and the card number, nothing else
    (a provider's device learns no name and no target group from it)."""
    return QR_PREFIX + card_number


def card_number_from_qr(payload: str) -> str | None:
    if not payload.startswith(QR_PREFIX):
        return None
    number = payload.removeprefix(QR_PREFIX)
    return number if is_valid_card_number(number) else None
