"""What we say, in Dutch (nl-BE) first and English second: pure templates, no I/O.

Templates are plain `str.format` strings so that a reviewer can read every sentence a
partner will receive. Amounts are passed as `Eur` (rendered `€ 12,50`) and dates as `date`
(rendered `27/11/2026` by the template's own format spec), so no caller formats by hand.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.events.checkins import CancellationReason
from shared.events.claims import RejectionReason, ReversalReason
from shared.events.payments import ACCOUNT_REASON_CODES
from shared.localtime import DUTCH_MONTHS
from shared.money import format_eur

Language = Literal["nl", "en"]
LANGUAGES: tuple[Language, ...] = ("nl", "en")
BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


@dataclass(frozen=True)
class Eur:
    """An amount in cents that formats itself the Belgian way inside a template."""

    cents: int

    def __format__(self, _spec: str) -> str:
        return format_eur(self.cents)


def local_day(moment: datetime) -> date:
    """The calendar day a Belgian reader would name for a UTC moment."""
    return moment.astimezone(BRUSSELS).date()


def language_of(value: str | None) -> Language:
    return "en" if value == "en" else "nl"


_D = "%d/%m/%Y"

# kind -> language -> (subject, body). The body is the core sentence(s); `render` adds the
# greeting and the signature so that they are the same in every message.
TEMPLATES: dict[str, dict[Language, tuple[str, str]]] = {
    "payment_requested": {
        "nl": (
            "Vrijetijdspas: terugbetaling van {amount} aangevraagd",
            "Voor een kaarthouder die u begeleidt is een terugbetaling van {amount} aangevraagd"
            " bij de financiële dienst ({claims} activiteit(en)), met mededeling {reference}.\n\n"
            "U hoeft niets te doen. Dit bericht bevat bewust geen naam.",
        ),
        "en": (
            "Leisure card: refund of {amount} requested",
            "A refund of {amount} was requested from the finance department for a card holder"
            " you support ({claims} activity/activities), reference {reference}.\n\n"
            "No action is needed. This message deliberately contains no name.",
        ),
    },
    "card_issued": {
        "nl": (
            "Vrijetijdspas: nieuwe kaart {card_number}",
            "Er is een vrijetijdspas uitgereikt met kaartnummer {card_number}, geldig van"
            " {eligible_from:" + _D + "} tot {eligible_until:" + _D + "}. De afdrukbare kaart"
            " zit in de bijlage.",
        ),
        "en": (
            "Leisure card: new card {card_number}",
            "A leisure card was issued with card number {card_number}, valid from"
            " {eligible_from:" + _D + "} until {eligible_until:" + _D + "}. The printable card"
            " is attached.",
        ),
    },
    "eligibility_ending": {
        "nl": (
            "Vrijetijdspas: recht op kansentarief eindigt op {eligible_until:" + _D + "}",
            "Het recht op het kansentarief van de kaarthouder met kaart {card_number} eindigt op"
            " {eligible_until:" + _D + "}. Wilt u nagaan of een verlenging nodig is?",
        ),
        "en": (
            "Leisure card: reduced tariff ends on {eligible_until:" + _D + "}",
            "The reduced tariff of the card holder with card {card_number} ends on"
            " {eligible_until:" + _D + "}. Could you check whether it should be extended?",
        ),
    },
    "card_unused": {
        "nl": (
            "Vrijetijdspas: kaart {card_number} wordt niet gebruikt",
            "Kaart {card_number} werd sinds {since:" + _D + "} niet meer gebruikt ({days}"
            " dagen). Misschien helpt een gesprek om een drempel weg te nemen.",
        ),
        "en": (
            "Leisure card: card {card_number} is not being used",
            "Card {card_number} has not been used since {since:" + _D + "} ({days} days)."
            " A conversation might help remove a barrier.",
        ),
    },
    # card_unused's wording for a card that was never used: `since` is when it was issued.
    "card_never_used": {
        "nl": (
            "Vrijetijdspas: kaart {card_number} wordt niet gebruikt",
            "Kaart {card_number}, uitgereikt op {since:" + _D + "}, werd nog niet gebruikt"
            " ({days} dagen). Misschien helpt een gesprek om een drempel weg te nemen.",
        ),
        "en": (
            "Leisure card: card {card_number} is not being used",
            "Card {card_number}, issued on {since:" + _D + "}, has not been used yet"
            " ({days} days). A conversation might help remove a barrier.",
        ),
    },
    "payment_failed": {
        "nl": (
            "Vrijetijdspas: terugbetaling van {amount} mislukt",
            "De terugbetaling van {amount} aan de kaarthouder met kaart {card_number} is"
            " mislukt: {reason}. {next_step}",
        ),
        "en": (
            "Leisure card: refund of {amount} failed",
            "The refund of {amount} to the card holder with card {card_number} failed:"
            " {reason}. {next_step}",
        ),
    },
    # The mail server refused a card holder's e-mail address for good: the message went by
    # letter instead (or, the variant below, could not: no postal address is known). The
    # address itself is not repeated here.
    "holder_email_refused": {
        "nl": (
            "Vrijetijdspas: e-mailadres van kaart {card_number} werkt niet",
            "Een e-mail aan de kaarthouder met kaart {card_number} kwam niet aan: de"
            " mailserver weigert het e-mailadres dat we kennen. We hebben het bericht daarom"
            " per brief verstuurd. Wilt u het e-mailadres samen met de kaarthouder nakijken"
            " en aanpassen in de kaartenbalie?",
        ),
        "en": (
            "Leisure card: e-mail address of card {card_number} does not work",
            "An e-mail to the card holder with card {card_number} did not arrive: the mail"
            " server refuses the e-mail address we know. We have therefore sent the message by"
            " letter. Could you check the e-mail address with the card holder and change it at"
            " the cards desk?",
        ),
    },
    "holder_email_refused_no_letter": {
        "nl": (
            "Vrijetijdspas: e-mailadres van kaart {card_number} werkt niet",
            "Een e-mail aan de kaarthouder met kaart {card_number} kwam niet aan: de"
            " mailserver weigert het e-mailadres dat we kennen. We kennen geen postadres, dus"
            " de kaarthouder heeft het bericht niet gekregen. Wilt u het e-mailadres samen met"
            " de kaarthouder nakijken en aanpassen in de kaartenbalie, of een postadres"
            " toevoegen?",
        ),
        "en": (
            "Leisure card: e-mail address of card {card_number} does not work",
            "An e-mail to the card holder with card {card_number} did not arrive: the mail"
            " server refuses the e-mail address we know. We know no postal address, so the"
            " card holder did not get the message. Could you check the e-mail address with the"
            " card holder and change it at the cards desk, or add a postal address?",
        ),
    },
    # The same notice when the mail server did not refuse the address for good, but kept
    # answering "not now" to it until we gave up (fallback.py).
    "holder_email_deferred": {
        "nl": (
            "Vrijetijdspas: e-mailadres van kaart {card_number} werkt niet",
            "Een e-mail aan de kaarthouder met kaart {card_number} kwam niet aan: de"
            " mailserver wees het e-mailadres dat we kennen telkens opnieuw af (bijvoorbeeld"
            " omdat de mailbox vol is), tot we het na vele pogingen opgaven. We hebben het"
            " bericht daarom per brief verstuurd. Wilt u het e-mailadres samen met de"
            " kaarthouder nakijken en aanpassen in de kaartenbalie?",
        ),
        "en": (
            "Leisure card: e-mail address of card {card_number} does not work",
            "An e-mail to the card holder with card {card_number} did not arrive: the mail"
            " server kept turning away the e-mail address we know (for instance because the"
            " mailbox is full), until we gave up after many tries. We have therefore sent the"
            " message by letter. Could you check the e-mail address with the card holder and"
            " change it at the cards desk?",
        ),
    },
    "holder_email_deferred_no_letter": {
        "nl": (
            "Vrijetijdspas: e-mailadres van kaart {card_number} werkt niet",
            "Een e-mail aan de kaarthouder met kaart {card_number} kwam niet aan: de"
            " mailserver wees het e-mailadres dat we kennen telkens opnieuw af (bijvoorbeeld"
            " omdat de mailbox vol is), tot we het na vele pogingen opgaven. We kennen geen"
            " postadres, dus de kaarthouder heeft het bericht niet gekregen. Wilt u het"
            " e-mailadres samen met de kaarthouder nakijken en aanpassen in de kaartenbalie,"
            " of een postadres toevoegen?",
        ),
        "en": (
            "Leisure card: e-mail address of card {card_number} does not work",
            "An e-mail to the card holder with card {card_number} did not arrive: the mail"
            " server kept turning away the e-mail address we know (for instance because the"
            " mailbox is full), until we gave up after many tries. We know no postal address,"
            " so the card holder did not get the message. Could you check the e-mail address"
            " with the card holder and change it at the cards desk, or add a postal address?",
        ),
    },
    "refund_approved": {
        "nl": (
            "Vrijetijdspas: u krijgt {amount} terug",
            "U nam op {day:" + _D + "} deel aan een activiteit ({category}) bij {provider}"
            " en betaalde {price}. U krijgt {amount} terug op uw rekening.",
        ),
        "en": (
            "Leisure card: you get {amount} back",
            "On {day:" + _D + "} you took part in an activity ({category}) at {provider}"
            " and paid {price}. You get {amount} back on your bank account.",
        ),
    },
    "refund_capped": {
        "nl": (
            "Vrijetijdspas: u krijgt {amount} terug",
            "U nam op {day:" + _D + "} deel aan een activiteit ({category}) bij {provider}"
            " en betaalde {price}. U krijgt {amount} terug op uw rekening. Dat is minder dan"
            " de gewone korting, omdat het maximumbedrag per activiteit of uw budget voor dit"
            " jaar bereikt is.",
        ),
        "en": (
            "Leisure card: you get {amount} back",
            "On {day:" + _D + "} you took part in an activity ({category}) at {provider}"
            " and paid {price}. You get {amount} back on your bank account. That is less than"
            " the usual discount, because the maximum per activity or your budget for this"
            " year has been reached.",
        ),
    },
    # Till-discount mode: the provider gave the discount at the till and the municipality
    # reimburses the provider, so nothing reaches the card holder's account.
    "till_discount": {
        "nl": (
            "Vrijetijdspas: {amount} korting aan de kassa",
            "U nam op {day:" + _D + "} deel aan een activiteit ({category}) bij {provider}"
            " en kreeg daar aan de kassa {amount} korting op de prijs van {price}. Die korting"
            " betalen wij aan {provider}. U krijgt dus niets op uw rekening en hoeft niets"
            " te doen.",
        ),
        "en": (
            "Leisure card: {amount} discount at the till",
            "On {day:" + _D + "} you took part in an activity ({category}) at {provider}"
            " and got {amount} off the price of {price} at the till. We pay that discount to"
            " {provider}. So nothing is paid into your account and you need not do anything.",
        ),
    },
    "till_discount_capped": {
        "nl": (
            "Vrijetijdspas: {amount} korting aan de kassa",
            "U nam op {day:" + _D + "} deel aan een activiteit ({category}) bij {provider}"
            " en kreeg daar aan de kassa {amount} korting op de prijs van {price}. Dat is"
            " minder dan de gewone korting, omdat het maximumbedrag per activiteit of uw"
            " budget voor dit jaar bereikt is. Die korting betalen wij aan {provider}. U krijgt"
            " dus niets op uw rekening en hoeft niets te doen.",
        ),
        "en": (
            "Leisure card: {amount} discount at the till",
            "On {day:" + _D + "} you took part in an activity ({category}) at {provider}"
            " and got {amount} off the price of {price} at the till. That is less than the"
            " usual discount, because the maximum per activity or your budget for this year"
            " has been reached. We pay that discount to {provider}. So nothing is paid into"
            " your account and you need not do anything.",
        ),
    },
    "refund_rejected": {
        "nl": (
            "Vrijetijdspas: geen terugbetaling voor uw activiteit van {day:" + _D + "}",
            "Uw activiteit van {day:" + _D + "} bij {provider} wordt niet terugbetaald,"
            " omdat {reason}. Hebt u vragen? Uw begeleider helpt u graag.",
        ),
        "en": (
            "Leisure card: no refund for your activity of {day:" + _D + "}",
            "Your activity of {day:" + _D + "} at {provider} is not refunded, because"
            " {reason}. Any questions? The person who supports you is glad to help.",
        ),
    },
    "till_discount_rejected": {
        "nl": (
            "Vrijetijdspas: uw korting van {day:" + _D + "} wordt niet vergoed",
            "Op {day:" + _D + "} kreeg u bij {provider} aan de kassa korting met uw"
            " vrijetijdspas. Die korting betalen wij niet aan {provider}, omdat {reason}. Hebt"
            " u vragen? Uw begeleider helpt u graag.",
        ),
        "en": (
            "Leisure card: your discount of {day:" + _D + "} is not covered",
            "On {day:" + _D + "} you got a discount at the till at {provider} with your leisure"
            " card. We do not pay that discount to {provider}, because {reason}. Any questions?"
            " The person who supports you is glad to help.",
        ),
    },
    "refund_reversed": {
        "nl": (
            "Vrijetijdspas: terugbetaling van {amount} geannuleerd",
            "Op {day:" + _D + "} heeft {provider} uw deelname aan een activiteit geannuleerd"
            " ({reason}). De terugbetaling van {amount} voor die activiteit gaat daarom niet door. Was dat"
            " bedrag al op uw rekening gestort, dan trekken we het af van uw volgende"
            " terugbetaling. Hebt u vragen? Uw begeleider helpt u graag.",
        ),
        "en": (
            "Leisure card: refund of {amount} cancelled",
            "On {day:" + _D + "} {provider} cancelled your participation in an activity"
            " ({reason}). The refund of {amount} for that activity will therefore not be made. If that amount"
            " was already paid into your account, we deduct it from your next refund. Any"
            " questions? The person who supports you is glad to help.",
        ),
    },
    # A cancelled till discount: the holder was never paid anything, so owes nothing back.
    "till_discount_reversed": {
        "nl": (
            "Vrijetijdspas: korting van {amount} aan de kassa geannuleerd",
            "Op {day:" + _D + "} heeft {provider} uw deelname aan een activiteit geannuleerd"
            " ({reason}). De korting van {amount} die u daarvoor aan de kassa kreeg, vervalt daarom. U"
            " hoeft niets te doen en niets terug te betalen. Hebt u vragen? Uw begeleider"
            " helpt u graag.",
        ),
        "en": (
            "Leisure card: discount of {amount} at the till cancelled",
            "On {day:" + _D + "} {provider} cancelled your participation in an activity"
            " ({reason}). The discount of {amount} you got at the till for it therefore lapses. You need not"
            " do anything or pay anything back. Any questions? The person who supports you is"
            " glad to help.",
        ),
    },
    "refund_held": {
        "nl": (
            "Vrijetijdspas: uw terugbetaling wacht op uw rekeningnummer",
            "Er staat {amount} klaar om u terug te betalen, maar we kennen uw rekeningnummer"
            " nog niet. Geef het door aan uw contactpersoon bij de organisatie die u begeleidt."
            " Bij de volgende betaling storten we dan alles wat u tegoed hebt.",
        ),
        "en": (
            "Leisure card: your refund is waiting for your bank account",
            "{amount} is ready to be refunded to you, but we do not know your bank account"
            " yet. Please give it to your contact person at the organisation that supports"
            " you. The next payment then pays everything you are owed.",
        ),
    },
    "refund_held_referrer": {
        "nl": (
            "Vrijetijdspas: terugbetaling wacht op een rekeningnummer",
            "Voor de kaarthouder met kaart {card_number} staat {amount} klaar, maar er is geen"
            " rekeningnummer bekend. Wilt u het rekeningnummer aanvullen in de kaartenbalie?"
            " De volgende betaling stort dan alles wat de kaarthouder tegoed heeft.",
        ),
        "en": (
            "Leisure card: a refund is waiting for a bank account",
            "{amount} is ready for the card holder with card {card_number}, but no bank"
            " account is known. Could you add it at the cards desk? The next payment then"
            " pays everything the card holder is owed.",
        ),
    },
    "refund_held_refused": {
        "nl": (
            "Vrijetijdspas: uw terugbetaling wacht op een ander rekeningnummer",
            "De bank heeft onze vorige overschrijving naar uw rekening geweigerd. Er staat"
            " {amount} klaar om u terug te betalen: geef een juist rekeningnummer door aan uw"
            " contactpersoon bij de organisatie die u begeleidt. Bij de volgende betaling"
            " storten we dan alles wat u tegoed hebt.",
        ),
        "en": (
            "Leisure card: your refund is waiting for another bank account",
            "The bank refused our last transfer to your account. {amount} is ready to be"
            " refunded to you: please give a correct bank account to your contact person at"
            " the organisation that supports you. The next payment then pays everything you"
            " are owed.",
        ),
    },
    "refund_held_refused_referrer": {
        "nl": (
            "Vrijetijdspas: terugbetaling wacht op een ander rekeningnummer",
            "Voor de kaarthouder met kaart {card_number} staat {amount} klaar, maar de bank"
            " weigerde de vorige overschrijving naar het bekende rekeningnummer. We betalen"
            " niet opnieuw naar die rekening: wilt u het rekeningnummer aanpassen in de"
            " kaartenbalie? De volgende betaling stort dan alles wat de kaarthouder tegoed"
            " heeft.",
        ),
        "en": (
            "Leisure card: a refund is waiting for another bank account",
            "{amount} is ready for the card holder with card {card_number}, but the bank"
            " refused the last transfer to the account we know. We will not pay that account"
            " again: could you change it at the cards desk? The next payment then pays"
            " everything the card holder is owed.",
        ),
    },
    "refund_paid": {
        "nl": (
            "Vrijetijdspas: {amount} gestort op uw rekening",
            "Op {day:" + _D + "} hebben we {amount} op uw rekening gestort, met mededeling"
            " {reference}.",
        ),
        "en": (
            "Leisure card: {amount} paid into your account",
            "On {day:" + _D + "} we paid {amount} into your bank account, with reference"
            " {reference}.",
        ),
    },
    "device_silent": {
        "nl": (
            "Vrijetijdspas: toestel {device} is stil",
            "Toestel {device} heeft sinds {since:" + _D + " %H:%M} niets meer gestuurd,"
            " terwijl het meestal {usual} actief is. Staat het aan en heeft het verbinding?",
        ),
        "en": (
            "Leisure card: device {device} is silent",
            "Device {device} has sent nothing since {since:" + _D + " %H:%M}, while it is"
            " usually active {usual}. Is it switched on and connected?",
        ),
    },
    # {offset} is clock_offset_words ("1 u 12 min voor"), {consequence} CLOCK_CONSEQUENCE.
    "device_clock_off": {
        "nl": (
            "Vrijetijdspas: de klok van toestel {device} loopt {offset}",
            "De klok van toestel {device} loopt {offset}. {consequence}\n\nLaat het toestel"
            " zijn tijd automatisch instellen (via internet, NTP) of zet de klok juist. Werkt"
            " het met ons programma (vtp device), zet dan de klok van die computer juist en"
            " stuur daarna een hartslag (vtp device heartbeat): het programma verbetert de"
            " tijd van zijn check-ins zelf zolang het de juiste tijd kan opvragen, maar niet"
            " altijd. We melden dit één keer; loopt de klok weer juist en later opnieuw"
            " verkeerd, dan hoort u het opnieuw.",
        ),
        "en": (
            "Leisure card: the clock of device {device} is {offset}",
            "The clock of device {device} is {offset}. {consequence}\n\nLet the device set"
            " its time automatically (over the internet, NTP) or set the clock right. If it"
            " runs our program (vtp device), set the clock of that computer right and then"
            " send a heartbeat (vtp device heartbeat): the program corrects the time of its"
            " check-ins itself as long as it can look up the right time, but not always. We"
            " tell you this once; if the clock is right again and later wrong again, you"
            " will hear it again.",
        ),
    },
    "payment_run_ready": {
        "nl": (
            "Vrijetijdspas: betalingsrun {run} staat klaar",
            "Betalingsrun {run} staat klaar: {payments} betaling(en) voor in totaal {total}.",
        ),
        "en": (
            "Leisure card: payment run {run} is ready",
            "Payment run {run} is ready: {payments} payment(s) for a total of {total}.",
        ),
    },
    "budget_threshold": {
        "nl": (
            "Vrijetijdspas: budgetlijn {line} heeft {percent}% bereikt",
            "Van het budget voor {line} in budgetjaar {year} is {spent} besteed van {budget}:"
            " de grens van {percent}% is bereikt.",
        ),
        "en": (
            "Leisure card: budget line {line} reached {percent}%",
            "Of the budget for {line} in budget year {year}, {spent} of {budget} has been"
            " spent: the {percent}% mark is reached.",
        ),
    },
    "referrer_digest": {
        "nl": ("Vrijetijdspas: uw overzicht van {day:" + _D + "}", "{items}"),
        "en": ("Leisure card: your summary of {day:" + _D + "}", "{items}"),
    },
}

_GREETING: dict[Language, str] = {"nl": "Beste {name},", "en": "Dear {name},"}
# Whom a message without a name addresses follows from its kind: a card holder, or the
# staff of a partner or the finance department (e.g. the fallback finance address).
HOLDER_KINDS = frozenset(
    {
        "refund_approved",
        "refund_capped",
        "till_discount",
        "till_discount_capped",
        "refund_rejected",
        "till_discount_rejected",
        "refund_reversed",
        "till_discount_reversed",
        "refund_held",
        "refund_held_refused",
        "refund_paid",
    }
)
_FALLBACK_NAME: dict[bool, dict[Language, str]] = {
    True: {"nl": "kaarthouder", "en": "card holder"},
    False: {"nl": "collega's", "en": "colleagues"},
}
_SIGNATURE: dict[Language, str] = {"nl": "Vrijetijdspas", "en": "Leisure card"}

REJECTION_REASONS: dict[Language, dict[str, str]] = {
    "nl": {
        "unknown_card": "we de gebruikte kaart niet kennen",
        "card_blocked": "uw kaart op dat moment geblokkeerd was, bijvoorbeeld na"
        " verlies of diefstal",
        "card_expired": "uw kaart op dat moment vervallen was",
        "card_revoked": "uw kaart ingetrokken was",
        "card_replaced": "u een oude kaart gebruikte die intussen vervangen is",
        "not_eligible": "u op die dag geen recht had op het kansentarief",
        "category_not_eligible": "dit soort activiteit niet onder uw voordeel valt",
        "provider_not_partner": "deze aanbieder niet meedoet met de vrijetijdspas",
        "already_today": "u voor deze activiteit die dag al een terugbetaling kreeg",
        "budget_exhausted": "uw budget voor dit jaar op is",
        "unknown_device": "we de registratie bij de aanbieder niet konden controleren",
        "device_revoked": "we de registratie bij de aanbieder niet konden controleren",
        "bad_signature": "we de registratie bij de aanbieder niet konden controleren",
        "replayed": "deze activiteit al eerder werd geregistreerd",
        "out_of_window": "de registratie te laat bij ons binnenkwam",
        "in_the_future": "de registratie een datum in de toekomst had",
        "nothing_to_refund": "er niets terug te betalen was",
        "frequency_limit": "u in die periode al zo vaak een terugbetaling kreeg als het"
        " reglement toelaat: er geldt een maximum aantal keer per dag, week of maand",
        "checkin_cancelled": "de aanbieder uw deelname aan deze activiteit heeft geannuleerd"
        " (bijvoorbeeld omdat ze niet doorging), en een geannuleerde deelname wordt niet"
        " terugbetaald",
    },
    "en": {
        "unknown_card": "we do not know the card that was used",
        "card_blocked": "your card was blocked at that moment, for instance after loss or theft",
        "card_expired": "your card had expired at that moment",
        "card_revoked": "your card had been revoked",
        "card_replaced": "you used an old card that has since been replaced",
        "not_eligible": "you were not entitled to the reduced tariff that day",
        "category_not_eligible": "this kind of activity is not covered",
        "provider_not_partner": "this provider does not take part in the scheme",
        "already_today": "you already had a refund for this activity that day",
        "budget_exhausted": "your budget for this year is used up",
        "unknown_device": "we could not verify the registration at the provider",
        "device_revoked": "we could not verify the registration at the provider",
        "bad_signature": "we could not verify the registration at the provider",
        "replayed": "this activity had already been registered",
        "out_of_window": "the registration reached us too late",
        "in_the_future": "the registration carried a date in the future",
        "nothing_to_refund": "there was nothing to refund",
        "frequency_limit": "you had already been refunded as often in that period as the"
        " rules allow: there is a maximum number of times per day, week or month",
        "checkin_cancelled": "the provider cancelled your participation in this activity"
        " (for instance because it did not take place), and a cancelled participation is"
        " not refunded",
    },
}

# Why a claim was reversed (ReversalReason: the code the provider picked when it cancelled
# the check-in), said to the card holder between brackets after "… geannuleerd".
REVERSAL_REASONS: dict[Language, dict[str, str]] = {
    "nl": {
        "activity_cancelled": "de activiteit ging niet door",
        "scanned_in_error": "uw kaart werd bij vergissing gescand",
        "scanned_twice": "uw kaart werd twee keer gescand voor hetzelfde bezoek",
        "did_not_attend": "u nam uiteindelijk niet deel",
        "refunded_at_till": "de aanbieder betaalde u de prijs zelf terug",
        "other": "om een andere reden",
    },
    "en": {
        "activity_cancelled": "the activity did not take place",
        "scanned_in_error": "your card was scanned by mistake",
        "scanned_twice": "your card was scanned twice for the same visit",
        "did_not_attend": "you did not take part in the end",
        "refunded_at_till": "the provider paid the price back to you itself",
        "other": "for another reason",
    },
}

CATEGORIES: dict[Language, dict[str, str]] = {
    "nl": {
        "culture": "cultuur",
        "sport": "sport",
        "youth": "jeugdwerk",
        "course": "cursus",
        "membership": "lidmaatschap",
    },
    "en": {
        "culture": "culture",
        "sport": "sport",
        "youth": "youth work",
        "course": "course",
        "membership": "membership",
    },
}

# ISO 20022 status reasons finance reports most, said in the referrer's language (the
# bank's own text is often English, and never shown). Any other code: PAYMENT_FAILURE_OTHER.
PAYMENT_FAILURES: dict[Language, dict[str, str]] = {
    "nl": {
        "AC01": "het rekeningnummer is onjuist",
        "AC04": "de rekening is afgesloten",
        "AC06": "de rekening is geblokkeerd",
        "AG01": "de bank laat deze overschrijving naar die rekening niet toe",
        "AM04": "er stond op dat moment te weinig geld op de rekening van de gemeente",
        "BE04": "het adres van de rekeninghouder ontbreekt",
        "MD07": "de bank meldt dat de rekeninghouder overleden is",
        "MS03": "de bank heeft geen reden opgegeven",
        "RC01": "de bankcode (BIC) is onjuist",
    },
    "en": {
        "AC01": "the account number is incorrect",
        "AC04": "the account is closed",
        "AC06": "the account is blocked",
        "AG01": "the bank does not allow this transfer to that account",
        "AM04": "there was not enough money on the municipality's account at the time",
        "BE04": "the account holder's address is missing",
        "MD07": "the bank reports that the account holder has passed away",
        "MS03": "the bank gave no reason",
        "RC01": "the bank code (BIC) is incorrect",
    },
}
PAYMENT_FAILURE_OTHER: dict[Language, tuple[str, str]] = {
    # (with the code, when it looks like one; without)
    "nl": (
        "de bank heeft de overschrijving geweigerd (code {code})",
        "de bank heeft de overschrijving geweigerd",
    ),
    "en": ("the bank refused the transfer (code {code})", "the bank refused the transfer"),
}
# What the referrer can do. A refusal for the account's sake (ACCOUNT_REASON_CODES) is not
# paid again to the same account; any other failure is paid again at the next payment run.
PAYMENT_FAILURE_STEPS: dict[Language, dict[str, str]] = {
    "nl": {
        "account": "Wilt u samen met de kaarthouder het rekeningnummer nakijken en aanpassen"
        " in de kaartenbalie? Naar deze rekening betalen we niet opnieuw.",
        "MD07": "Wilt u nagaan op welke rekening we voortaan kunnen betalen, en die"
        " aanpassen in de kaartenbalie?",
        "again": "We proberen het bij de volgende betaling opnieuw. U hoeft niets te doen.",
    },
    "en": {
        "account": "Could you check the bank account with the card holder and change it at"
        " the cards desk? We will not pay this account again.",
        "MD07": "Could you find out which account we can pay from now on, and change it at the"
        " cards desk?",
        "again": "We will try again with the next payment. No action is needed.",
    },
}
_REASON_CODE = re.compile(r"^[A-Z0-9]{2,8}$")


_UNKNOWN_REASON: dict[Language, str] = {
    "nl": "de aanvraag niet aan de voorwaarden voldeed",
    "en": "the claim did not meet the conditions",
}


# The claims service words a broken frequency limit as "at most <n> per <scope> per <period>"
# (services/claims/decisions.py); when the detail reads like that, the holder hears the rule
# itself, otherwise the general sentence above.
_FREQUENCY_DETAIL = re.compile(
    r"^at most (?P<n>[1-9]\d{0,3}) per (?P<scope>activity|provider|category|any)"
    r" per (?P<period>day|week|month)$"
)
_FREQUENCY_SCOPE: dict[Language, dict[str, str]] = {
    "nl": {
        "activity": "voor deze activiteit",
        "provider": "bij deze aanbieder",
        "category": "voor dit soort activiteit",
        "any": "",
    },
    "en": {
        "activity": "for this activity",
        "provider": "at this provider",
        "category": "for this kind of activity",
        "any": "",
    },
}
_FREQUENCY_PERIOD: dict[Language, dict[str, str]] = {
    "nl": {"day": "die dag", "week": "die week", "month": "die maand"},
    "en": {"day": "that day", "week": "that week", "month": "that month"},
}


def _times(n: int, language: Language) -> str:
    if language == "nl":
        return "één keer" if n == 1 else f"{n} keer"
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def frequency_limit(detail: str, language: Language) -> str | None:
    """The broken limit in plain words, or None when the detail is not the claims wording."""
    match = _FREQUENCY_DETAIL.match(detail)
    if match is None:
        return None
    times = _times(int(match["n"]), language)
    scope = _FREQUENCY_SCOPE[language][match["scope"]]
    period = _FREQUENCY_PERIOD[language][match["period"]]
    if language == "nl":
        words = ["u", scope, period, "al", times, "een terugbetaling kreeg"]
        return " ".join(w for w in words if w) + "; meer laat het reglement niet toe"
    words = ["you had already been refunded", times, scope, period]
    return " ".join(w for w in words if w) + ", the most the rules allow"


# A check-in its provider cancelled before it reached claims is rejected with the detail
# "cancelled by the provider: <CancellationReason code>" (services/claims/checkins.py); the
# holder hears the code in the words of a reversal, between brackets as there.
_CANCELLED_DETAIL = re.compile(r"^cancelled by the provider: (?P<code>[a-z_]{1,40})$")
_CANCELLED: dict[Language, str] = {
    "nl": "de aanbieder uw deelname aan deze activiteit heeft geannuleerd ({why}), en een"
    " geannuleerde deelname wordt niet terugbetaald",
    "en": "the provider cancelled your participation in this activity ({why}), and a"
    " cancelled participation is not refunded",
}


def cancelled_before(detail: str, language: Language) -> str | None:
    """Why the provider cancelled, in plain words, or None when the detail is not the claims
    wording with a known code (then the general sentence, never the text itself)."""
    match = _CANCELLED_DETAIL.match(detail.strip())
    if match is None:
        return None
    try:
        code = CancellationReason(match["code"])
    except ValueError:
        return None
    why = REVERSAL_REASONS[language].get(code.value)
    return None if why is None else _CANCELLED[language].format(why=why)


# A target group that has no discount at all in the refund policy of the day is rejected as
# nothing_to_refund with the detail "target group <group> has no discount in the refund
# policy version in force that day (…)" (services/claims/decisions.py). Said as such: "there
# was nothing to refund" would read as if the activity had been free. The group is not named.
_NO_DISCOUNT_DETAIL = re.compile(r"^target group .{1,50}? has no discount\b", re.DOTALL)
_NO_DISCOUNT: dict[Language, str] = {
    "nl": "er op die dag volgens het reglement geen korting was voor uw doelgroep",
    "en": "the rules in force that day gave no discount to your target group",
}


def rejection_reason(
    reason: RejectionReason | str, language: Language, detail: str | None = None
) -> str:
    # Keyed by the reason's value: a reason added later still gets a plain sentence.
    specific: str | None = None
    if detail:
        match str(reason):
            case RejectionReason.FREQUENCY_LIMIT.value:
                specific = frequency_limit(detail, language)
            case RejectionReason.CHECKIN_CANCELLED.value:
                specific = cancelled_before(detail, language)
            case RejectionReason.NOTHING_TO_REFUND.value:
                if _NO_DISCOUNT_DETAIL.match(detail.strip()):
                    specific = _NO_DISCOUNT[language]
    if specific is not None:
        return specific
    return REJECTION_REASONS[language].get(str(reason), _UNKNOWN_REASON[language])


def reversal_reason(reason: ReversalReason | str, language: Language) -> str:
    # Keyed by the reason's value: a reason added later is at least "another reason".
    phrases = REVERSAL_REASONS[language]
    return phrases.get(str(reason), phrases[ReversalReason.OTHER.value])


def payment_failure(code: str, language: Language) -> str:
    """Why a refund failed, in words of the referrer's language: never the bank's own text
    (often English, sometimes with a name in it). An unknown code is named, if it is one."""
    code = code.strip().upper()
    known = PAYMENT_FAILURES[language].get(code)
    if known is not None:
        return known
    with_code, without = PAYMENT_FAILURE_OTHER[language]
    return with_code.format(code=code) if _REASON_CODE.match(code) else without


def payment_failure_next_step(code: str, language: Language) -> str:
    """What the referrer can do about a failed refund (see PAYMENT_FAILURE_STEPS)."""
    code = code.strip().upper()
    steps = PAYMENT_FAILURE_STEPS[language]
    if code == "MD07":
        return steps["MD07"]
    return steps["account" if code in ACCOUNT_REASON_CODES else "again"]


def category(value: str, language: Language) -> str:
    return CATEGORIES[language].get(value, value)


# Templates that are another kind's wording in one case, not kinds of their own: a delivery
# keeps the kind (what a recipient opts out of, what the log counts), `render` is told which
# wording to use.
WORDINGS: dict[str, str] = {
    "card_never_used": "card_unused",
    "holder_email_refused_no_letter": "holder_email_refused",
    "holder_email_deferred": "holder_email_refused",
    "holder_email_deferred_no_letter": "holder_email_refused",
}


def render(kind: str, language: Language, greet: str | None = None, **facts: Any) -> Message:
    """The message of one kind (or one of WORDINGS); `greet` is whom we address (an
    organisation or a person)."""
    subject, body = TEMPLATES[kind][language]
    kind = WORDINGS.get(kind, kind)
    name = greet or _FALLBACK_NAME[kind in HOLDER_KINDS][language]
    return _letter(language, name, subject.format(**facts), body.format(**facts))


def _letter(language: Language, name: str, subject: str, core: str) -> Message:
    """The greeting and the signature around a message's core, the same in every message."""
    return Message(
        subject=subject,
        body=f"{_GREETING[language].format(name=name)}\n\n{core}\n\n{_SIGNATURE[language]}\n",
    )


# The provider's statement, sentence by sentence. It counts the scans that *reached us* in
# the period (a device offline for a while sends late; each scan is in exactly one statement,
# that of the period it arrived in), which the provider can check against its own devices.
# It never says how many were approved, rejected or discounted: in refund mode the card
# holder pays the full price and nobody at the till may learn who has the reduced tariff.
# Only a provider in till-discount mode, which gave the discounts itself, hears what it is
# reimbursed for them.
STATEMENT: dict[Language, dict[str, str]] = {
    "nl": {
        "subject": "Vrijetijdspas: overzicht van {period}",
        "scans": "Uw toestellen stuurden ons {during} {scans} van de vrijetijdspas.",
        "late": "Daarvan {late} al van vóór {period_from:" + _D + "}: een toestel zonder"
        " verbinding stuurt scans later door. Elke scan staat in één overzicht: dat van de"
        " periode waarin hij bij ons binnenkwam.",
        "till": "Voor de kortingen die u aan de kassa gaf, betalen wij u {reimbursed} terug"
        " ({discounts}).",
        "own_share": "Uw eigen aandeel in die kortingen, {share}, is daar al van afgetrokken.",
        "anonymous": "Dit overzicht bevat bewust geen namen en zegt niet wie korting krijgt.",
        "no_names": "Dit overzicht bevat bewust geen namen.",
    },
    "en": {
        "subject": "Leisure card: statement of {period}",
        "scans": "Your devices sent us {scans} of the leisure card {during}.",
        "late": "Of these, {late} from before {period_from:" + _D + "}: a device without a"
        " connection sends its scans later. Every scan is in one statement: that of the"
        " period in which it reached us.",
        "till": "For the discounts you gave at the till, we pay you {reimbursed} ({discounts}).",
        "own_share": "Your own share of those discounts, {share}, has already been deducted.",
        "anonymous": "This statement deliberately contains no names and does not say who gets"
        " a discount.",
        "no_names": "This statement deliberately contains no names.",
    },
}

MONTHS: dict[Language, tuple[str, ...]] = {
    "nl": DUTCH_MONTHS,
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


WEEKDAYS: dict[Language, tuple[str, ...]] = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"),
}


def usual_days_words(weekdays: Collection[int], language: Language) -> str:
    """The days a device usually works (0 = Monday), as the device_silent message says
    them: "elke dag" / "every day", or "op woensdag en zaterdag" / "on Wednesdays and
    Saturdays", Monday first. (No weekday at all makes no alarm; said as every day.)"""
    if len(set(weekdays)) in (0, 7):
        return "elke dag" if language == "nl" else "every day"
    names = [WEEKDAYS[language][d] for d in sorted(set(weekdays))]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1])
    if len(names) > 1:
        joined += (" en " if language == "nl" else " and ") + names[-1]
    return ("op " if language == "nl" else "on ") + joined


# What a device clock that is off costs (device_clock_off), by the way it is off: claims
# judges a check-in by the time the device signed (docs/device-protocol.md, section 7).
CLOCK_CONSEQUENCE: dict[Language, dict[bool, str]] = {
    "nl": {
        True: "Check-ins van dit toestel kunnen daardoor geweigerd worden, omdat ze in de"
        " toekomst lijken te liggen: daarvoor betalen we niets terug.",
        False: "Check-ins van dit toestel kunnen daardoor op de verkeerde dag geboekt worden,"
        " of geweigerd als ze te oud lijken: dan betalen we te weinig of niets terug.",
    },
    "en": {
        True: "Check-ins from this device may therefore be refused, as they seem to lie in"
        " the future: we pay nothing back for those.",
        False: "Check-ins from this device may therefore be booked on the wrong day, or"
        " refused when they seem too old: then we pay back too little or nothing.",
    },
}

# Units of clock_offset_words, largest first: (seconds, nl one, nl many, en one, en many).
_OFFSET_UNITS = (
    (365 * 86_400, "jaar", "jaar", "year", "years"),
    (86_400, "dag", "dagen", "day", "days"),
    (3_600, "u", "u", "h", "h"),
    (60, "min", "min", "min", "min"),
    (1, "s", "s", "s", "s"),
)
# The largest offset a heartbeat can carry (shared/events/checkins.py, DeviceHeartbeat): a
# device further off (a kiosk that believes it is 1970) reports this much.
OFFSET_BOUND_MS = 10**12


def clock_offset_words(offset_ms: int, language: Language) -> str:
    """How far a device clock is off (device clock minus ours), in plain words with its
    two largest units: "1 u 12 min voor" / "1 h 12 min ahead", "3 dagen 4 u achter" /
    "3 days 4 h behind". An offset at the bound a heartbeat can carry is "meer dan 31 jaar"
    / "more than 31 years": the clock may be further off still."""
    seconds = abs(offset_ms) // 1000
    nl = language == "nl"
    parts = []
    for size, nl_one, nl_many, en_one, en_many in _OFFSET_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            one, many = (nl_one, nl_many) if nl else (en_one, en_many)
            parts.append(f"{count} {one if count == 1 else many}")
        elif parts:
            break  # "1 u 0 min 5 s" is said "1 u": the next unit only, when it counts
        if len(parts) == 2:
            break
    words = " ".join(parts) or ("minder dan 1 s" if nl else "less than 1 s")
    if abs(offset_ms) >= OFFSET_BOUND_MS:
        words = ("meer dan " if nl else "more than ") + parts[0]
    if nl:
        return f"{words} {'voor' if offset_ms > 0 else 'achter'}"
    return f"{words} {'ahead' if offset_ms > 0 else 'behind'}"


def period_words(start: date, end: date, language: Language) -> tuple[str, str]:
    """(name, phrase) of a period: ("juni 2026", "in juni 2026") for a whole calendar month,
    otherwise ("01/06/2026 tot en met 15/06/2026", "van 01/06/2026 tot en met 15/06/2026")."""
    same_month = (start.year, start.month) == (end.year, end.month)
    if same_month and start.day == 1 and (end + timedelta(days=1)).day == 1:
        name = f"{MONTHS[language][start.month - 1]} {start.year}"
        return name, f"in {name}"
    if language == "nl":
        name = f"{start:{_D}} tot en met {end:{_D}}"
        return name, f"van {name}"
    name = f"{start:{_D}} to {end:{_D}}"
    return name, f"from {name}"


def _counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class TillReimbursement:
    """What a provider in till-discount mode is reimbursed for the discounts it gave."""

    discounts: int
    reimbursed: Eur  # the discounts less the provider's own share of them
    own_share: Eur = Eur(0)


def provider_statement(
    language: Language,
    greet: str | None,
    *,
    period_from: date,
    period_to: date,
    checkins: int,
    late: int,
    till: TillReimbursement | None = None,
) -> Message:
    """The periodic statement for a provider (see STATEMENT for what it may say)."""
    words = STATEMENT[language]
    nl = language == "nl"
    name, during = period_words(period_from, period_to, language)
    first = words["scans"].format(during=during, scans=_counted(checkins, "scan", "scans"))
    if late:
        if nl:
            late_words = f"was er {late}" if late == 1 else f"waren er {late}"
        else:
            late_words = f"{late} was" if late == 1 else f"{late} were"
        first += " " + words["late"].format(late=late_words, period_from=period_from)
    paragraphs = [first]
    if till is not None:
        discounts = (
            _counted(till.discounts, "korting", "kortingen")
            if nl
            else _counted(till.discounts, "discount", "discounts")
        )
        till_words = words["till"].format(reimbursed=till.reimbursed, discounts=discounts)
        if till.own_share.cents:
            till_words += " " + words["own_share"].format(share=till.own_share)
        paragraphs.append(till_words)
    paragraphs.append(words["no_names" if till is not None else "anonymous"])
    return _letter(
        language,
        greet or _FALLBACK_NAME[False][language],
        words["subject"].format(period=name),
        "\n\n".join(paragraphs),
    )


def digest_line(message: Message) -> str:
    """One item of a digest: its subject without the brand prefix, then its first paragraph."""
    title = message.subject.split(": ", 1)[-1]
    core = message.body.split("\n\n")[1] if "\n\n" in message.body else message.body
    return f"- {title}\n  {core}"
