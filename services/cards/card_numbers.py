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
