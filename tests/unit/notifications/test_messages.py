"""The Dutch (and English) texts every partner receives, checked word for word where it
matters: amounts `€ 12,50`, dates `27/11/2026`, rejection reasons in plain words."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.notifications.messages import (
    LANGUAGES,
    REJECTION_REASONS,
    TEMPLATES,
    Eur,
    Message,
    category,
    digest_line,
    local_day,
    payment_failure,
    payment_failure_next_step,
    provider_statement,
    rejection_reason,
    render,
    usual_days_words,
)
from shared.events.claims import RejectionReason

DAY = date(2026, 11, 27)


def test_refund_approved_in_dutch() -> None:
    m = render(
        "refund_approved",
        "nl",
        "An Peeters",
        day=DAY,
        provider="Cultuurcentrum Zwaneberg",
        category=category("culture", "nl"),
        price=Eur(2500),
        amount=Eur(1250),
    )
    assert m.subject == "Vrijetijdspas: u krijgt € 12,50 terug"
    assert m.body.startswith("Beste An Peeters,\n\n")
    assert (
        "U nam op 27/11/2026 deel aan een activiteit (cultuur) bij Cultuurcentrum Zwaneberg"
        " en betaalde € 25,00. U krijgt € 12,50 terug op uw rekening." in m.body
    )
    assert m.body.endswith("Vrijetijdspas\n")


def test_refund_capped_explains_why_less() -> None:
    m = render(
        "refund_capped",
        "nl",
        None,
        day=DAY,
        provider="Sportdienst",
        category=category("sport", "nl"),
        price=Eur(123_405),
        amount=Eur(1000),
    )
    assert m.body.startswith("Beste kaarthouder,")
    assert "betaalde € 1.234,05" in m.body
    assert "U krijgt € 10,00 terug" in m.body
    assert "minder dan de gewone korting" in m.body
    assert "maximumbedrag per activiteit of uw budget voor dit jaar" in m.body


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (RejectionReason.CARD_BLOCKED, "omdat uw kaart op dat moment geblokkeerd was"),
        (RejectionReason.CARD_EXPIRED, "omdat uw kaart op dat moment vervallen was"),
        (RejectionReason.NOT_ELIGIBLE, "omdat u op die dag geen recht had op het kansentarief"),
        (
            RejectionReason.ALREADY_TODAY,
            "omdat u voor deze activiteit die dag al een terugbetaling",
        ),
        (RejectionReason.BUDGET_EXHAUSTED, "omdat uw budget voor dit jaar op is"),
        (RejectionReason.PROVIDER_NOT_PARTNER, "omdat deze aanbieder niet meedoet"),
        (
            RejectionReason.CATEGORY_NOT_ELIGIBLE,
            "omdat dit soort activiteit niet onder uw voordeel",
        ),
    ],
)
def test_refund_rejected_says_why_in_plain_dutch(reason: RejectionReason, words: str) -> None:
    m = render(
        "refund_rejected",
        "nl",
        "An",
        day=DAY,
        provider="JH De Kajuit",
        reason=rejection_reason(reason, "nl"),
    )
    assert m.subject == "Vrijetijdspas: geen terugbetaling voor uw activiteit van 27/11/2026"
    assert "Uw activiteit van 27/11/2026 bij JH De Kajuit wordt niet terugbetaald," in m.body
    assert words in m.body
    assert reason.value not in m.body  # never the code itself


def test_every_rejection_reason_has_plain_words_in_both_languages() -> None:
    for language in ("nl", "en"):
        for reason in RejectionReason:
            text = rejection_reason(reason, language)
            assert text and "_" not in text
    assert rejection_reason("something_new", "nl") == "de aanvraag niet aan de voorwaarden voldeed"
    assert set(REJECTION_REASONS["nl"]) == set(REJECTION_REASONS["en"])


def test_refund_paid() -> None:
    m = render(
        "refund_paid", "nl", "An", day=DAY, amount=Eur(3750), reference="+++123/4567/89012+++"
    )
    assert m.subject == "Vrijetijdspas: € 37,50 gestort op uw rekening"
    assert (
        "Op 27/11/2026 hebben we € 37,50 op uw rekening gestort, met mededeling"
        " +++123/4567/89012+++." in m.body
    )


def test_referrer_messages() -> None:
    issued = render(
        "card_issued",
        "nl",
        "OCMW Heist",
        card_number="1234567890128",
        eligible_from=date(2026, 1, 1),
        eligible_until=date(2026, 12, 31),
    )
    assert issued.body.startswith("Beste OCMW Heist,")
    assert "kaartnummer 1234567890128, geldig van 01/01/2026 tot 31/12/2026" in issued.body
    assert "afdrukbare kaart zit in de bijlage" in issued.body

    ending = render(
        "eligibility_ending", "nl", "OCMW", card_number="1234567890128", eligible_until=DAY
    )
    assert ending.subject == "Vrijetijdspas: recht op kansentarief eindigt op 27/11/2026"
    assert "kaart 1234567890128 eindigt op 27/11/2026" in ending.body

    unused = render(
        "card_unused", "nl", "OCMW", card_number="1234567890128", since=date(2026, 8, 1), days=118
    )
    assert (
        "Kaart 1234567890128 werd sinds 01/08/2026 niet meer gebruikt (118 dagen)." in unused.body
    )

    failed = render(
        "payment_failed",
        "nl",
        "OCMW",
        amount=Eur(1250),
        card_number="1234567890128",
        reason=payment_failure("AC01", "nl"),
        next_step=payment_failure_next_step("AC01", "nl"),
    )
    assert failed.subject == "Vrijetijdspas: terugbetaling van € 12,50 mislukt"
    assert "met kaart 1234567890128 is mislukt: het rekeningnummer is onjuist." in failed.body
    assert "Wilt u samen met de kaarthouder het rekeningnummer nakijken" in failed.body

    requested = render(
        "payment_requested", "nl", "OCMW", amount=Eur(990), claims=2, reference="+++1+++"
    )
    assert requested.subject == "Vrijetijdspas: terugbetaling van € 9,90 aangevraagd"
    assert "bewust geen naam" in requested.body


def test_provider_messages_hold_no_names_or_target_groups() -> None:
    # The statement's wording, and what it must never say, is in test_provider_statement.py.
    statement = provider_statement(
        "nl",
        "Sportdienst",
        period_from=date(2026, 10, 1),
        period_to=date(2026, 10, 31),
        checkins=42,
        late=0,
    )
    assert statement.subject == "Vrijetijdspas: overzicht van oktober 2026"
    assert "Uw toestellen stuurden ons in oktober 2026 42 scans" in statement.body
    for word in ("armoede", "kansenstatuut", "senior", "beperking"):
        assert word not in statement.body.lower()

    silent = render(
        "device_silent",
        "nl",
        "Sportdienst",
        device="0192ab34",
        since=datetime(2026, 11, 26, 18, 5),
        usual=usual_days_words(range(7), "nl"),
    )
    assert "Toestel 0192ab34 heeft sinds 26/11/2026 18:05 niets meer gestuurd" in silent.body
    assert "terwijl het meestal elke dag actief is." in silent.body


def test_a_silent_device_is_said_to_work_on_its_usual_days() -> None:
    """A device with a routine is told silent on the days it usually works, said so."""
    club = render(
        "device_silent",
        "nl",
        "Jeugdhuis",
        device="0192ab34",
        since=datetime(2026, 11, 28, 22, 10),
        usual=usual_days_words({5, 2}, "nl"),
    )
    assert (
        "Toestel 0192ab34 heeft sinds 28/11/2026 22:10 niets meer gestuurd, terwijl het"
        " meestal op woensdag en zaterdag actief is." in club.body
    )
    pool = render(
        "device_silent",
        "en",
        "Swimming pool",
        device="0192ab34",
        since=datetime(2026, 11, 28, 21, 0),
        usual=usual_days_words(range(6), "en"),
    )
    assert (
        "while it is usually active on Mondays, Tuesdays, Wednesdays, Thursdays, Fridays and"
        " Saturdays." in pool.body
    )
    assert usual_days_words([6], "nl") == "op zondag"
    assert usual_days_words([0, 0, 6], "en") == "on Mondays and Sundays"
    assert usual_days_words(range(7), "en") == "every day"


def test_finance_messages() -> None:
    run = render(
        "payment_run_ready",
        "nl",
        "Financiële dienst",
        run="0192ab34",
        payments=3,
        total=Eur(123_456),
    )
    assert run.body.count("3 betaling(en) voor in totaal € 1.234,56") == 1
    budget = render(
        "budget_threshold",
        "nl",
        None,
        line="kansentarief",
        year=2026,
        percent=80,
        spent=Eur(850_000),
        budget=Eur(1_000_000),
    )
    assert budget.subject == "Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt"
    # The threshold reached, not the share spent (85 % here): said as such.
    assert (
        "Van het budget voor kansentarief in budgetjaar 2026 is € 8.500,00 besteed van"
        " € 10.000,00: de grens van 80% is bereikt." in budget.body
    )


def test_english_is_available_for_every_kind() -> None:
    assert all(set(langs) == {"nl", "en"} for langs in TEMPLATES.values())
    m = render("refund_paid", "en", "An", day=DAY, amount=Eur(1250), reference="x")
    assert m.subject == "Leisure card: € 12,50 paid into your account"
    assert m.body.startswith("Dear An,")


def test_digest_line_and_local_day() -> None:
    m = Message("Vrijetijdspas: nieuwe kaart 1", "Beste X,\n\nEr is een kaart.\n\nVrijetijdspas\n")
    assert digest_line(m) == "- nieuwe kaart 1\n  Er is een kaart."
    # 23:30 UTC on 26 November is already the 27th in Brussels.
    assert local_day(datetime(2026, 11, 26, 23, 30, tzinfo=UTC)) == DAY


@pytest.mark.parametrize("kind", ["till_discount", "till_discount_capped"])
def test_a_till_discount_is_confirmed_and_no_refund_promised(kind: str) -> None:
    facts = {
        "day": DAY,
        "provider": "Sportdienst",
        "category": category("sport", "nl"),
        "price": Eur(1000),
        "amount": Eur(400),
    }
    nl = render(kind, "nl", "An Peeters", **facts)
    assert nl.subject == "Vrijetijdspas: € 4,00 korting aan de kassa"
    assert (
        "U nam op 27/11/2026 deel aan een activiteit (sport) bij Sportdienst en kreeg daar"
        " aan de kassa € 4,00 korting op de prijs van € 10,00." in nl.body
    )
    assert "U krijgt dus niets op uw rekening en hoeft niets te doen." in nl.body
    assert "terug" not in nl.body and "betaalde" not in nl.body
    en = render(kind, "en", "An Peeters", **{**facts, "category": category("sport", "en")})
    assert en.subject == "Leisure card: € 4,00 discount at the till"
    assert "nothing is paid into your account" in en.body and "back" not in en.body
    capped = kind.endswith("_capped")
    assert ("minder dan de gewone korting" in nl.body) is capped
    assert ("less than the usual discount" in en.body) is capped


@pytest.mark.parametrize(
    ("kind", "facts"),
    [
        ("payment_run_ready", {"run": "0192ab34", "payments": 3, "total": Eur(1)}),
        (
            "budget_threshold",
            {"line": "poverty", "year": 2026, "percent": 80, "spent": Eur(8), "budget": Eur(10)},
        ),
        ("referrer_digest", {"day": DAY, "items": "- iets"}),
    ],
)
def test_staff_without_a_name_are_not_greeted_as_card_holders(
    kind: str, facts: dict[str, object]
) -> None:
    assert render(kind, "nl", None, **facts).body.startswith("Beste collega's,\n\n")
    assert render(kind, "en", None, **facts).body.startswith("Dear colleagues,\n\n")


def test_a_cancelled_till_discount_lapses_and_asks_nothing_back() -> None:
    facts = {"day": DAY, "provider": "JH De Kajuit", "amount": Eur(400)}
    nl = render(
        "till_discount_reversed", "nl", None, **facts, reason="de activiteit ging niet door"
    )
    assert nl.subject == "Vrijetijdspas: korting van € 4,00 aan de kassa geannuleerd"
    assert nl.body == (
        "Beste kaarthouder,\n\n"
        "Op 27/11/2026 heeft JH De Kajuit uw deelname aan een activiteit geannuleerd"
        " (de activiteit ging niet door). De korting van € 4,00 die u daarvoor aan de kassa kreeg, vervalt daarom. U hoeft"
        " niets te doen en niets terug te betalen. Hebt u vragen? Uw begeleider helpt u"
        " graag.\n\n"
        "Vrijetijdspas\n"
    )
    # Nothing of a refund: the holder had the discount at the till and was paid nothing.
    assert "terugbetaling" not in nl.body and "rekening" not in nl.body
    en = render("till_discount_reversed", "en", "An Peeters", **facts, reason="for another reason")
    assert en.subject == "Leisure card: discount of € 4,00 at the till cancelled"
    assert en.body.startswith(
        "Dear An Peeters,\n\nOn 27/11/2026 JH De Kajuit cancelled your participation in an"
        " activity (for another reason). The discount of € 4,00 you got at the till for it therefore lapses."
    )
    assert "You need not do anything or pay anything back." in en.body
    assert "refund" not in en.body and "account" not in en.body


def test_a_card_never_used_is_not_called_no_longer_used() -> None:
    never = render(
        "card_never_used",
        "nl",
        "OCMW",
        card_number="1234567890128",
        since=date(2026, 8, 1),
        days=118,
    )
    assert never.subject == "Vrijetijdspas: kaart 1234567890128 wordt niet gebruikt"
    assert (
        "Kaart 1234567890128, uitgereikt op 01/08/2026, werd nog niet gebruikt (118 dagen)."
        in never.body
    )
    assert "sinds" not in never.body and "niet meer" not in never.body
    english = render(
        "card_never_used", "en", None, card_number="1", since=date(2026, 8, 1), days=118
    )
    assert "issued on 01/08/2026, has not been used yet (118 days)" in english.body
    assert english.body.startswith("Dear colleagues,")


# What a referrer reads for each reason the bank gives: the bank's own text never.
@pytest.mark.parametrize(
    ("code", "nl", "en"),
    [
        ("AC01", "het rekeningnummer is onjuist", "the account number is incorrect"),
        ("AC04", "de rekening is afgesloten", "the account is closed"),
        ("AC06", "de rekening is geblokkeerd", "the account is blocked"),
        ("AG01", "de bank laat deze overschrijving naar die rekening niet toe", "does not allow"),
        ("AM04", "te weinig geld op de rekening van de gemeente", "not enough money"),
        ("BE04", "het adres van de rekeninghouder ontbreekt", "address is missing"),
        ("MD07", "de bank meldt dat de rekeninghouder overleden is", "has passed away"),
        ("MS03", "de bank heeft geen reden opgegeven", "the bank gave no reason"),
        ("RC01", "de bankcode (BIC) is onjuist", "the bank code (BIC) is incorrect"),
        ("ms03", "de bank heeft geen reden opgegeven", "the bank gave no reason"),
        ("XX99", "de bank heeft de overschrijving geweigerd (code XX99)", "(code XX99)"),
        ("", "de bank heeft de overschrijving geweigerd", "the bank refused the transfer"),
        ("<b>Jan", "de bank heeft de overschrijving geweigerd", "the bank refused the transfer"),
    ],
)
def test_a_failed_refund_is_explained_in_the_referrer_s_language(
    code: str, nl: str, en: str
) -> None:
    assert nl in payment_failure(code, "nl")
    assert en in payment_failure(code, "en")
    assert "Jan" not in payment_failure(code, "nl")
    for language in LANGUAGES:
        message = render(
            "payment_failed",
            language,
            "OCMW",
            amount=Eur(500),
            card_number="1234567890128",
            reason=payment_failure(code, language),
            next_step=payment_failure_next_step(code, language),
        )
        assert "{" not in message.body and ": " in message.body


def test_what_the_referrer_can_do_follows_the_reason() -> None:
    # The account must change: we do not pay it again (claims holds the refund).
    assert "Naar deze rekening betalen we niet opnieuw" in payment_failure_next_step("AC04", "nl")
    # Gently, and not "check it with the card holder", who may be the one who died.
    died = payment_failure_next_step("MD07", "nl")
    assert "kaarthouder" not in died and "op welke rekening we voortaan kunnen betalen" in died
    # Not the account's fault: paid again with the next payment, nothing to do.
    for code in ("AM04", "MS03", "XX99"):
        assert payment_failure_next_step(code, "nl") == (
            "We proberen het bij de volgende betaling opnieuw. U hoeft niets te doen."
        )
        assert "No action is needed" in payment_failure_next_step(code, "en")


def test_holder_email_refused_names_the_card_not_the_address() -> None:
    by_letter = render("holder_email_refused", "nl", "OCMW Heist", card_number="1234567890128")
    assert by_letter.subject == "Vrijetijdspas: e-mailadres van kaart 1234567890128 werkt niet"
    assert by_letter.body.startswith("Beste OCMW Heist,")
    assert "per brief verstuurd" in by_letter.body and "@" not in by_letter.body
    no_letter = render("holder_email_refused_no_letter", "en", None, card_number="1")
    assert "We know no postal address" in no_letter.body
    assert no_letter.body.startswith("Dear colleagues,")


def test_an_address_put_off_until_we_gave_up_is_told_as_such() -> None:
    """The same notice (kind, subject) when the mail server kept putting the address off."""
    by_letter = render("holder_email_deferred", "nl", "OCMW Heist", card_number="1234567890128")
    assert by_letter.subject == "Vrijetijdspas: e-mailadres van kaart 1234567890128 werkt niet"
    assert "wees het e-mailadres dat we kennen telkens opnieuw af" in by_letter.body
    assert "per brief verstuurd" in by_letter.body and "weigert" not in by_letter.body
    no_letter = render("holder_email_deferred_no_letter", "en", None, card_number="1")
    assert "kept turning away the e-mail address we know" in no_letter.body
    assert "We know no postal address" in no_letter.body
    assert no_letter.body.startswith("Dear colleagues,")
