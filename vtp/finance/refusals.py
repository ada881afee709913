"""Accounts the bank refused. A payment that failed or came back for the account's sake
(ACCOUNT_REASON_CODES: closed, wrong, blocked, ...) would be refused again at that account,
so finance pays the payee's next requests there no more: they wait until finance registers
another account, and the first export after that pays them. A refusal for another reason
(MS03, AM04, ...) leaves the account as it was.

The book knows accounts by a fingerprint keyed with finance's private key, never by IBAN."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from shared.events.payments import ACCOUNT_REASON_CODES

_REFUSING = ("failed", "returned")


@dataclass(frozen=True)
class PaidAnswer:
    """The bank's answer about one payment, and the account (fingerprint) it went to."""

    paid_to: str
    status: str
    reason_code: str | None


def account_key(private_key: str, iban: str) -> str:
    """An IBAN's fingerprint: the same for the same account however it was written."""
    compact = "".join(iban.split()).upper()
    return hmac.new(private_key.encode(), compact.encode(), hashlib.sha256).hexdigest()[:32]


def refused_accounts(answers: Iterable[PaidAnswer]) -> dict[str, str]:
    """Per account whose latest answer (answers oldest first) refused it for the account's
    sake, that reason code. A later settlement to the same account clears it: it works."""
    latest = {a.paid_to: a for a in answers}
    return {
        key: a.reason_code
        for key, a in latest.items()
        if a.status in _REFUSING and a.reason_code is not None
        if a.reason_code in ACCOUNT_REASON_CODES
    }
