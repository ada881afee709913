"""Rendered texts of the follow-ups: a reversed refund, the specific reasons for a frequency
limit (with a property test of the detail parser), a check-in its provider cancelled and a
target group without a discount, and the operators' dead-letter event that carries no
address and no name."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.claims.decisions import CardAtCheckIn, CheckInFacts, ProviderView, decide
from services.claims.eligibility import Grant
from services.claims.policy import RefundPolicy
from services.notifications.delivery import dead_lettered
from services.notifications.messages import (
    Eur,
    Language,
    frequency_limit,
    rejection_reason,
    render,
    reversal_reason,
)
from services.notifications.outcomes import without_addresses
from shared.events.cards import CardStatus, ProviderMode
from shared.events.checkins import ActivityCategory, CancellationReason
from shared.events.claims import RejectionReason, ReversalReason
from shared.events.notifications import NotificationDeadLettered

DAY = date(2026, 11, 27)
GENERIC_NL = "de aanvraag niet aan de voorwaarden voldeed"


def test_refund_reversed_in_plain_dutch() -> None:
    m = render(
        "refund_reversed",
        "nl",
        "An Peeters",
        day=DAY,
        provider="JH De Kajuit",
        amount=Eur(750),
        reason=reversal_reason(ReversalReason.ACTIVITY_CANCELLED, "nl"),
    )
    assert m.subject == "Vrijetijdspas: terugbetaling van € 7,50 geannuleerd"
    assert m.body == (
        "Beste An Peeters,\n\n"
        "Op 27/11/2026 heeft JH De Kajuit uw deelname aan een activiteit geannuleerd"
        " (de activiteit ging niet door). De terugbetaling van € 7,50 voor die activiteit gaat daarom niet door. Was dat"
        " bedrag al op uw rekening gestort, dan trekken we het af van uw volgende terugbetaling. Hebt u vragen? Uw begeleider helpt u graag.\n\n"
        "Vrijetijdspas\n"
    )


def test_refund_reversed_in_english() -> None:
    m = render(
        "refund_reversed",
        "en",
        None,
        day=DAY,
        provider="Sportdienst",
        amount=Eur(123_405),
        reason=reversal_reason(ReversalReason.SCANNED_IN_ERROR, "en"),
    )
    assert m.subject == "Leisure card: refund of € 1.234,05 cancelled"
    assert m.body.startswith(
        "Dear card holder,\n\nOn 27/11/2026 Sportdienst cancelled your participation in an"
        " activity (your card was scanned by mistake)."
    )
    assert "The refund of € 1.234,05 for that activity will therefore not be made" in m.body
    assert "we deduct it from your next refund" in m.body


REVERSAL_PHRASES_NL = {
    ReversalReason.ACTIVITY_CANCELLED: "de activiteit ging niet door",
    ReversalReason.SCANNED_IN_ERROR: "uw kaart werd bij vergissing gescand",
    ReversalReason.SCANNED_TWICE: "uw kaart werd twee keer gescand voor hetzelfde bezoek",
    ReversalReason.DID_NOT_ATTEND: "u nam uiteindelijk niet deel",
    ReversalReason.REFUNDED_AT_TILL: "de aanbieder betaalde u de prijs zelf terug",
    ReversalReason.OTHER: "om een andere reden",
}


@pytest.mark.parametrize("reason", list(ReversalReason))
def test_every_reversal_reason_is_told_in_plain_words(reason: ReversalReason) -> None:
    assert set(REVERSAL_PHRASES_NL) == set(ReversalReason)
    nl = reversal_reason(reason, "nl")
    assert nl == REVERSAL_PHRASES_NL[reason]
    en = reversal_reason(reason, "en")
    assert en and en != nl and "_" not in en
    # Said between brackets after "… geannuleerd", so it reads as one sentence.
    for kind in ("refund_reversed", "till_discount_reversed"):
        body = render(
            kind, "nl", None, day=DAY, provider="JH De Kajuit", amount=Eur(400), reason=nl
        )
        assert f"uw deelname aan een activiteit geannuleerd ({nl})." in body.body
        assert reason.value not in body.body


def test_the_english_reversal_reasons_differ_from_each_other() -> None:
    assert len({reversal_reason(r, "en") for r in ReversalReason}) == len(ReversalReason)


def rejected(reason: RejectionReason, detail: str, language: str = "nl") -> str:
    lang: Language = "en" if language == "en" else "nl"
    return render(
        "refund_rejected",
        lang,
        "An",
        day=DAY,
        provider="Zwembad Heist",
        reason=rejection_reason(reason, lang, detail),
    ).body


@pytest.mark.parametrize(
    ("detail", "words"),
    [
        (
            "at most 2 per provider per week",
            "omdat u bij deze aanbieder die week al 2 keer een terugbetaling kreeg; meer laat"
            " het reglement niet toe.",
        ),
        (
            "at most 1 per category per month",
            "omdat u voor dit soort activiteit die maand al één keer een terugbetaling kreeg;",
        ),
        ("at most 3 per any per day", "omdat u die dag al 3 keer een terugbetaling kreeg;"),
        ("at most 4 per activity per week", "omdat u voor deze activiteit die week al 4 keer"),
        # Not the claims wording (an older or changed service): still about frequency.
        (
            "weekly limit",
            "omdat u in die periode al zo vaak een terugbetaling kreeg als het reglement toelaat:"
            " er geldt een maximum aantal keer per dag, week of maand.",
        ),
    ],
)
def test_frequency_limit_names_the_rule_in_dutch(detail: str, words: str) -> None:
    body = rejected(RejectionReason.FREQUENCY_LIMIT, detail)
    assert "Uw activiteit van 27/11/2026 bij Zwembad Heist wordt niet terugbetaald," in body
    assert words in body
    assert GENERIC_NL not in body and "frequency" not in body and "at most" not in body


def test_frequency_limit_in_english() -> None:
    body = rejected(RejectionReason.FREQUENCY_LIMIT, "at most 2 per provider per week", "en")
    assert (
        "is not refunded, because you had already been refunded twice at this provider that"
        " week, the most the rules allow." in body
    )


def test_cancelled_checkin_says_the_provider_cancelled() -> None:
    body = rejected(RejectionReason.CHECKIN_CANCELLED, "cancelled by the provider: zieke trainer")
    assert (
        "omdat de aanbieder uw deelname aan deze activiteit heeft geannuleerd (bijvoorbeeld"
        " omdat ze niet doorging), en een geannuleerde deelname wordt niet terugbetaald." in body
    )
    assert "zieke trainer" not in body  # the provider's free text is not ours to pass on
    english = rejected(RejectionReason.CHECKIN_CANCELLED, "", "en")
    assert "because the provider cancelled your participation in this activity" in english


@pytest.mark.parametrize("code", list(CancellationReason))
@pytest.mark.parametrize("language", ["nl", "en"])
def test_a_checkin_cancelled_before_it_arrived_says_why_in_words(
    code: CancellationReason, language: str
) -> None:
    lang: Language = "en" if language == "en" else "nl"
    why = reversal_reason(code.value, lang)  # the words a reversal uses for the same code
    body = rejected(RejectionReason.CHECKIN_CANCELLED, f"cancelled by the provider: {code}", lang)
    if lang == "nl":
        assert (
            f"omdat de aanbieder uw deelname aan deze activiteit heeft geannuleerd ({why}), en"
            " een geannuleerde deelname wordt niet terugbetaald." in body
        )
        assert "bijvoorbeeld" not in body
    else:
        assert (
            f"because the provider cancelled your participation in this activity ({why}), and"
            " a cancelled participation is not refunded." in body
        )
        assert "for instance" not in body
    assert code.value not in body.replace(why, "")  # the code itself is never shown


def test_the_cancellation_reasons_read_apart() -> None:
    for lang in ("nl", "en"):
        language: Language = "en" if lang == "en" else "nl"
        texts = {
            rejection_reason(
                RejectionReason.CHECKIN_CANCELLED, language, f"cancelled by the provider: {code}"
            )
            for code in CancellationReason
        }
        assert len(texts) == len(CancellationReason)


@pytest.mark.parametrize(
    "detail",
    [
        "cancelled by the provider: zieke trainer",  # free text from before the codes
        "cancelled by the provider: no_such_code",
        "cancelled by the provider:",
        "activity_cancelled",
        "cancelled by the provider: activity_cancelled (and more)",
    ],
)
def test_a_cancellation_detail_not_in_the_claims_wording_gets_the_general_sentence(
    detail: str,
) -> None:
    assert rejection_reason(RejectionReason.CHECKIN_CANCELLED, "nl", detail) == (
        rejection_reason(RejectionReason.CHECKIN_CANCELLED, "nl")
    )


def _no_discount_detail(group: str) -> str:
    """What claims writes for a target group its policy of the day gives no discount."""
    policy = RefundPolicy.model_validate(
        {
            "municipality": "Proefgemeente",
            "versions": [
                {
                    "effective_from": date(2025, 1, 1),
                    "discount_basis_points": {"poverty": 7500},
                    "cap_per_checkin_cents": 5000,
                    "yearly_budget_cents": 50000,
                    "eligible_categories": ["culture"],
                }
            ],
        }
    )
    decision = decide(
        policy,
        CheckInFacts(datetime(2025, 3, 4, 18, tzinfo=UTC), ActivityCategory.CULTURE, 2000),
        CardAtCheckIn(
            uuid.uuid4(),
            uuid.uuid4(),
            Grant(group, date(2025, 1, 1), date(2025, 12, 31), 0),
            CardStatus.ACTIVE,
        ),
        ProviderView(partner=True, mode=ProviderMode.REFUND),
        used_cents=0,
        limit_reached=None,
    )
    assert decision.reason is RejectionReason.NOTHING_TO_REFUND
    return decision.detail


@pytest.mark.parametrize("group", ["senior", "mensen met een beperking"])
def test_a_target_group_without_a_discount_is_not_told_there_was_nothing_to_refund(
    group: str,
) -> None:
    detail = _no_discount_detail(group)
    nl = rejected(RejectionReason.NOTHING_TO_REFUND, detail)
    assert (
        "wordt niet terugbetaald, omdat er op die dag volgens het reglement geen korting was"
        " voor uw doelgroep." in nl
    )
    en = rejected(RejectionReason.NOTHING_TO_REFUND, detail, "en")
    assert (
        "is not refunded, because the rules in force that day gave no discount to your"
        " target group." in en
    )
    for body in (nl, en):
        assert "niets terug te betalen" not in body and "nothing to refund" not in body
        assert group not in body  # the target group is not named


def test_a_price_without_a_discount_still_has_nothing_to_refund() -> None:
    detail = "a price of 0 cents leaves no discount to refund"
    assert "omdat er niets terug te betalen was." in rejected(
        RejectionReason.NOTHING_TO_REFUND, detail
    )
    assert "because there was nothing to refund." in rejected(
        RejectionReason.NOTHING_TO_REFUND, detail, "en"
    )


def test_the_detail_matters_only_where_it_has_words_for_the_holder() -> None:
    specific = {
        RejectionReason.FREQUENCY_LIMIT,
        RejectionReason.CHECKIN_CANCELLED,
        RejectionReason.NOTHING_TO_REFUND,
    }
    details = [
        "at most 2 per provider per week",
        "cancelled by the provider: scanned_twice",
        "target group senior has no discount in the refund policy version in force that day",
    ]
    for reason in RejectionReason:
        if reason not in specific:
            for detail in details:
                assert rejection_reason(reason, "nl", detail) == rejection_reason(reason, "nl")


@given(
    n=st.integers(min_value=1, max_value=9999),
    scope=st.sampled_from(["activity", "provider", "category", "any"]),
    period=st.sampled_from(["day", "week", "month"]),
    language=st.sampled_from(["nl", "en"]),
)
def test_every_claims_wording_becomes_a_plain_sentence(
    n: int, scope: str, period: str, language: str
) -> None:
    lang: Language = "en" if language == "en" else "nl"
    text = frequency_limit(f"at most {n} per {scope} per {period}", lang)
    assert text is not None
    count = {"nl": {1: "één keer"}, "en": {1: "once", 2: "twice"}}[lang].get(n, str(n))
    assert count in text
    assert "  " not in text and not text.endswith(" ")
    if lang == "nl":
        assert scope not in text.split()  # the code word never reaches a Dutch reader
    nl_period = {"day": "dag", "week": "week", "month": "maand"}[period]
    assert (period if lang == "en" else nl_period) in text


@given(st.text(max_size=300))
def test_any_other_detail_falls_back_without_failing(detail: str) -> None:
    text = rejection_reason(RejectionReason.FREQUENCY_LIMIT, "nl", detail)
    assert text and GENERIC_NL not in text
    assert text == frequency_limit(detail, "nl") or "maximum aantal keer" in text


def test_error_texts_lose_addresses_and_urls() -> None:
    assert without_addresses(
        "SMTP 550: <an.peeters+x@example.org> unknown; webhook https://p.example/h?token=abc"
    ) == ("SMTP 550: <<address>> unknown; webhook <url>")


def test_the_dead_letter_event_names_the_party_by_key_only() -> None:
    delivery_id = uuid.uuid4()
    row = {
        "delivery_id": delivery_id,
        "kind": "refund_approved",
        "recipient": f"holder:{uuid.uuid4()}",
        "channel": "email",
        "correlation_id": "c-1",
        "address": "an@example.org",
        "body": "Beste An Peeters",
    }
    at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    envelope, event = dead_lettered(row, 8, "gave up: SMTP 450 for an@example.org", at)  # type: ignore[arg-type]
    assert event.reason == "gave up: SMTP 450 for <address>"
    assert (event.delivery_id, event.attempts, event.dead_at) == (delivery_id, 8, at)
    assert envelope.correlation_id == "c-1" and envelope.subject == str(delivery_id)
    dumped = event.model_dump_json()
    assert "an@example.org" not in dumped and "Peeters" not in dumped
    with pytest.raises(ValidationError):
        NotificationDeadLettered(**{**event.model_dump(), "recipient": "An Peeters"})
