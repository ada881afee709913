"""The provider statement, word for word: what a provider hears about the scans that reached
us, and never whether a visitor had a discount, unless the provider gave it at its till."""

from __future__ import annotations

from datetime import date

import pytest

from services.notifications.messages import (
    Eur,
    Language,
    TillReimbursement,
    period_words,
    provider_statement,
)

JUNE = (date(2026, 6, 1), date(2026, 6, 30))


def test_a_refund_mode_statement_counts_scans_and_nothing_else() -> None:
    m = provider_statement(
        "nl", "Sportdienst", period_from=JUNE[0], period_to=JUNE[1], checkins=1, late=0
    )
    assert m.subject == "Vrijetijdspas: overzicht van juni 2026"
    assert m.body == (
        "Beste Sportdienst,\n\n"
        "Uw toestellen stuurden ons in juni 2026 1 scan van de vrijetijdspas.\n\n"
        "Dit overzicht bevat bewust geen namen en zegt niet wie korting krijgt.\n\n"
        "Vrijetijdspas\n"
    )
    # Nothing but the count of scans, which the provider's own devices know: no amount, no
    # approval, no share "met korting" from which the reduced tariff could be inferred.
    assert "€" not in m.body and "met korting" not in m.body and "goedgekeurd" not in m.body


def test_late_scans_are_explained_in_the_period_they_arrived_in() -> None:
    m = provider_statement(
        "nl", "Sportdienst", period_from=JUNE[0], period_to=JUNE[1], checkins=12, late=2
    )
    assert (
        "Uw toestellen stuurden ons in juni 2026 12 scans van de vrijetijdspas. Daarvan"
        " waren er 2 al van vóór 01/06/2026: een toestel zonder verbinding stuurt scans later"
        " door. Elke scan staat in één overzicht: dat van de periode waarin hij bij ons"
        " binnenkwam." in m.body
    )
    one = provider_statement(
        "nl", "Sportdienst", period_from=JUNE[0], period_to=JUNE[1], checkins=3, late=1
    )
    assert "Daarvan was er 1 al van vóór 01/06/2026" in one.body
    en = provider_statement(
        "en", "Sports", period_from=JUNE[0], period_to=JUNE[1], checkins=3, late=1
    )
    assert en.subject == "Leisure card: statement of June 2026"
    assert "Your devices sent us 3 scans of the leisure card in June 2026. Of these, 1 was" in (
        en.body
    )


def test_a_till_discount_provider_hears_its_reimbursement() -> None:
    m = provider_statement(
        "nl",
        "Cultuurcentrum",
        period_from=JUNE[0],
        period_to=JUNE[1],
        checkins=5,
        late=0,
        till=TillReimbursement(discounts=4, reimbursed=Eur(3600)),
    )
    assert (
        "Voor de kortingen die u aan de kassa gaf, betalen wij u € 36,00 terug (4 kortingen)."
        in m.body
    )
    assert "Dit overzicht bevat bewust geen namen." in m.body
    en = provider_statement(
        "en",
        None,
        period_from=JUNE[0],
        period_to=JUNE[1],
        checkins=1,
        late=0,
        till=TillReimbursement(discounts=1, reimbursed=Eur(900)),
    )
    assert en.body.startswith("Dear colleagues,")
    assert "we pay you € 9,00 (1 discount)." in en.body
    assert "share" not in en.body and "aandeel" not in m.body  # it bears none


LANGUAGES: tuple[Language, Language] = ("nl", "en")


def test_a_till_discount_provider_hears_its_own_share_was_deducted() -> None:
    """Paid the discounts less its own share (claims nets the two): the statement must
    say so, or the amount on its bank statement looks wrong."""
    till = TillReimbursement(discounts=4, reimbursed=Eur(2880), own_share=Eur(720))
    nl, en = (
        provider_statement(
            language,
            None,
            period_from=JUNE[0],
            period_to=JUNE[1],
            checkins=4,
            late=0,
            till=till,
        )
        for language in LANGUAGES
    )
    assert (
        "betalen wij u € 28,80 terug (4 kortingen). Uw eigen aandeel in die kortingen,"
        " € 7,20, is daar al van afgetrokken." in nl.body
    )
    assert "we pay you € 28,80 (4 discounts). Your own share of those discounts, € 7,20," in (
        en.body
    )


@pytest.mark.parametrize(
    ("start", "end", "nl", "en"),
    [
        (date(2026, 6, 1), date(2026, 6, 30), ("juni 2026", "in juni 2026"), "June 2026"),
        (date(2028, 2, 1), date(2028, 2, 29), ("februari 2028", "in februari 2028"), None),
        (date(2026, 12, 1), date(2026, 12, 31), ("december 2026", "in december 2026"), None),
        (
            date(2026, 6, 1),
            date(2026, 6, 15),
            ("01/06/2026 tot en met 15/06/2026", "van 01/06/2026 tot en met 15/06/2026"),
            "01/06/2026 to 15/06/2026",
        ),
        (
            date(2026, 6, 2),
            date(2026, 6, 30),
            ("02/06/2026 tot en met 30/06/2026", "van 02/06/2026 tot en met 30/06/2026"),
            None,
        ),
    ],
)
def test_period_words(start: date, end: date, nl: tuple[str, str], en: str | None) -> None:
    assert period_words(start, end, "nl") == nl
    if en is not None:
        assert period_words(start, end, "en")[0] == en
