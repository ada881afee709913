"""The reason codes a person picks at the desk: which fit which card action, their Dutch
labels (for whatever shows the choice), and the note that may go with them. Only the code
travels in the events; the note is kept in the cards database and the audit log, and is
blanked when the holder is erased."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from services.cards.domain.errors import InvalidField
from services.cards.domain.lifecycle import CardAction
from shared.events.cards import CardStatusReason as R
from shared.events.cards import DeviceRevocationReason as D

# The daily job's `eligibility_ended` and erasure's `holder_erased` are not picked by a
# person: they are not offered for any action.
CARD_REASONS: dict[CardAction, tuple[R, ...]] = {
    CardAction.BLOCK: (R.LOST, R.STOLEN, R.FRAUD_SUSPECTED, R.HOLDER_REQUEST, R.OTHER),
    CardAction.UNBLOCK: (R.FOUND, R.OTHER),
    CardAction.REPLACE: (R.LOST, R.STOLEN, R.DAMAGED, R.FRAUD_SUSPECTED, R.OTHER),
    CardAction.REVOKE: (
        R.NO_LONGER_ELIGIBLE,
        R.HOLDER_REQUEST,
        R.ISSUED_IN_ERROR,
        R.FRAUD_SUSPECTED,
        R.OTHER,
    ),
}

CARD_REASON_LABELS: dict[R, str] = {
    R.LOST: "verloren",
    R.STOLEN: "gestolen",
    R.DAMAGED: "beschadigd",
    R.FOUND: "teruggevonden",
    R.FRAUD_SUSPECTED: "vermoeden van misbruik",
    R.HOLDER_REQUEST: "op vraag van de kaarthouder",
    R.NO_LONGER_ELIGIBLE: "heeft geen recht meer op de kaart",
    R.ISSUED_IN_ERROR: "verkeerdelijk uitgereikt",
    R.ELIGIBILITY_ENDED: "recht op de kaart afgelopen",
    R.HOLDER_ERASED: "gegevens van de kaarthouder gewist",
    R.OTHER: "andere reden (licht toe in de notitie)",
}

DEVICE_REASON_LABELS: dict[D, str] = {
    D.LOST: "verloren",
    D.STOLEN: "gestolen",
    D.REPLACED: "vervangen door een ander toestel",
    D.PROVIDER_STOPPED: "aanbieder stopt",
    D.KEY_COMPROMISED: "sleutel uitgelekt",
    D.OTHER: "andere reden (licht toe in de notitie)",
}

NOTE_FOR_OTHER = "is required when the reason is other: say why (it stays at the desk)"


def check_card_reason(action: CardAction, reason: R, note: str | None) -> None:
    """Refuses a code that does not fit the action (naming those that do), and `other`
    without a note: the audit trail must say why."""
    allowed = CARD_REASONS.get(action, ())
    if reason not in allowed:
        raise InvalidField(
            "reason",
            f"{reason.value} is not a reason to {action.value} a card;"
            f" use one of: {', '.join(allowed)}",
        )
    if reason is R.OTHER and not note:
        raise InvalidField("note", NOTE_FOR_OTHER)


def check_device_reason(reason: D, note: str | None) -> None:
    if reason is D.OTHER and not note:
        raise InvalidField("note", NOTE_FOR_OTHER)


def audit_reason(code: str, note: str | None) -> str:
    """The audit line's why: the code, and the note when one was given."""
    return f"{code}: {note}" if note else code


Code = TypeVar("Code", bound=StrEnum)


def _offered(codes: Iterable[Code], labels: Mapping[Code, str]) -> list[dict[str, str]]:
    return [{"code": c.value, "label": labels[c]} for c in codes]


def reason_codes() -> dict[str, dict[str, list[dict[str, str]]]]:
    """What the desk offers, per action: each code with its Dutch label."""
    return {
        "cards": {
            a.value: _offered(codes, CARD_REASON_LABELS) for a, codes in CARD_REASONS.items()
        },
        "devices": {"revoke": _offered(D, DEVICE_REASON_LABELS)},
    }
