"""What we say, in Dutch (nl-BE) first: pure functions from events to message texts."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.payments import PaymentRequested
from shared.money import format_eur


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def payment_requested_for_referrer(e: PaymentRequested, organisation: str) -> Message:
    return Message(
        subject=f"Vrijetijdspas: terugbetaling van {format_eur(e.amount_cents)} aangevraagd",
        body=(
            f"Beste {organisation},\n\n"
            f"Voor een kaarthouder die u begeleidt is een terugbetaling van "
            f"{format_eur(e.amount_cents)} aangevraagd bij de financiële dienst "
            f"({e.claims} activiteit(en)), met mededeling {e.structured_reference}.\n\n"
            "U hoeft niets te doen. Dit bericht bevat bewust geen naam.\n\n"
            "Vrijetijdspas\n"
        ),
    )
