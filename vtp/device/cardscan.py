"""What a scanner reads: a typed card number, or the text of the QR code on the card."""

from __future__ import annotations

import re

from stdnum import luhn
from stdnum.exceptions import ValidationError

_CARD_NUMBER = re.compile(r"(?<!\d)(\d{13})(?!\d)")


class NotACard(ValueError):
    """The scanned text holds no valid card number. The message is for the staff at the
    till, so in Dutch, and without the number (it may end up in a log)."""


def card_number_from_scan(text: str) -> str:
    """The one 13-digit, Luhn-valid card number in `text` (spaces and dashes ignored).

    A QR code may wrap the number in a URL or a prefix; a misread digit fails the Luhn
    check here, on the device, instead of becoming a rejected claim later."""
    compact = re.sub(r"[\s-]", "", text)
    found = {m.group(1) for m in _CARD_NUMBER.finditer(compact)}
    if not found:
        raise NotACard("geen kaartnummer gevonden: scan de kaart opnieuw")
    if len(found) > 1:
        raise NotACard("meer dan één kaartnummer gelezen: scan één kaart tegelijk")
    number = found.pop()
    try:
        luhn.validate(number)
    except ValidationError as exc:
        raise NotACard(
            "het kaartnummer klopt niet (controlecijfer): verkeerd gelezen of geen vrijetijdspas"
        ) from exc
    return number
