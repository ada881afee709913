"""The reason codes the desk offers per card action, their Dutch labels, and the refusals
that name the codes that fit."""

from __future__ import annotations

import pytest

from services.cards.domain.errors import InvalidField
from services.cards.domain.lifecycle import CardAction
from services.cards.domain.reasons import (
    CARD_REASON_LABELS,
    CARD_REASONS,
    DEVICE_REASON_LABELS,
    check_card_reason,
    check_device_reason,
    reason_codes,
)
from shared.events.cards import CardStatusReason as R
from shared.events.cards import DeviceRevocationReason as D

SYSTEM_ONLY = {R.ELIGIBILITY_ENDED, R.HOLDER_ERASED}


def test_every_code_has_a_dutch_label_and_every_person_action_its_codes() -> None:
    assert set(CARD_REASON_LABELS) == set(R) and set(DEVICE_REASON_LABELS) == set(D)
    assert set(CARD_REASONS) == {a for a in CardAction if a is not CardAction.EXPIRE}
    offered = {code for codes in CARD_REASONS.values() for code in codes}
    assert offered == set(R) - SYSTEM_ONLY
    assert all(R.OTHER in codes for codes in CARD_REASONS.values())


def test_a_code_that_does_not_fit_the_action_is_refused_naming_those_that_do() -> None:
    with pytest.raises(InvalidField) as refused:
        check_card_reason(CardAction.UNBLOCK, R.STOLEN, "note")
    assert refused.value.as_error() == {
        "field": "reason",
        "reason": "stolen is not a reason to unblock a card; use one of: found, other",
    }
    for code in SYSTEM_ONLY:
        with pytest.raises(InvalidField):
            check_card_reason(CardAction.REVOKE, code, None)
    with pytest.raises(InvalidField):
        check_card_reason(CardAction.EXPIRE, R.ELIGIBILITY_ENDED, None)  # the job's, not ours
    check_card_reason(CardAction.REVOKE, R.NO_LONGER_ELIGIBLE, None)


def test_other_needs_a_note() -> None:
    with pytest.raises(InvalidField) as card:
        check_card_reason(CardAction.BLOCK, R.OTHER, None)
    with pytest.raises(InvalidField) as device:
        check_device_reason(D.OTHER, "")
    assert card.value.field == device.value.field == "note"
    check_card_reason(CardAction.BLOCK, R.OTHER, "swallowed by a ticket machine")
    check_device_reason(D.OTHER, "fell in the pool")


def test_the_listing_gives_code_and_label() -> None:
    listing = reason_codes()
    assert listing["cards"]["replace"][2] == {"code": "damaged", "label": "beschadigd"}
    assert [c["code"] for c in listing["devices"]["revoke"]] == [d.value for d in D]
