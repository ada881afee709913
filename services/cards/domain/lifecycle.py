"""Card lifecycle: which action may move a card from which status, and to where.

    active ──block──▶ blocked ──unblock──▶ active
    active | blocked ──replace──▶ replaced   (a new active card takes over the holder)
    active | blocked ──expire───▶ expired    (the daily job, when eligibility has ended)
    active | blocked ──revoke───▶ revoked    (granted wrongly, fraud, erasure)

replaced, expired and revoked are final: a holder whose card ended gets a new card.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from services.cards.domain.errors import Conflict
from shared.events.cards import CardStatus


class CardAction(StrEnum):
    BLOCK = "block"
    UNBLOCK = "unblock"
    REPLACE = "replace"
    EXPIRE = "expire"
    REVOKE = "revoke"


_FROM: dict[CardAction, frozenset[CardStatus]] = {
    CardAction.BLOCK: frozenset({CardStatus.ACTIVE}),
    CardAction.UNBLOCK: frozenset({CardStatus.BLOCKED}),
    CardAction.REPLACE: frozenset({CardStatus.ACTIVE, CardStatus.BLOCKED}),
    CardAction.EXPIRE: frozenset({CardStatus.ACTIVE, CardStatus.BLOCKED}),
    CardAction.REVOKE: frozenset({CardStatus.ACTIVE, CardStatus.BLOCKED}),
}
_TO: dict[CardAction, CardStatus] = {
    CardAction.BLOCK: CardStatus.BLOCKED,
    CardAction.UNBLOCK: CardStatus.ACTIVE,
    CardAction.REPLACE: CardStatus.REPLACED,
    CardAction.EXPIRE: CardStatus.EXPIRED,
    CardAction.REVOKE: CardStatus.REVOKED,
}
FINAL = frozenset({CardStatus.REPLACED, CardStatus.EXPIRED, CardStatus.REVOKED})


def next_status(current: CardStatus, action: CardAction) -> CardStatus:
    """The status after `action`, or Conflict naming the status that forbids it."""
    allowed = _FROM[action]
    if current not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise Conflict(
            f"status: cannot {action.value} a card that is {current.value};"
            f" only a card that is {names} can be {_TO[action].value}"
        )
    return _TO[action]


def check_can_issue(statuses_held: Iterable[CardStatus]) -> None:
    """A person holds at most one live card: an active or blocked one must be replaced
    (which keeps the budget and history) rather than joined by a second card."""
    held = set(statuses_held)
    if CardStatus.ACTIVE in held:
        raise Conflict("card: this person already has an active card; block or replace it")
    if CardStatus.BLOCKED in held:
        raise Conflict("card: this person has a blocked card; replace it instead")


_PRINT_INSTEAD: dict[CardStatus, str] = {
    CardStatus.BLOCKED: "unblock it, or replace it and print the new card",
    CardStatus.REPLACED: "print the card that replaced it",
    CardStatus.EXPIRED: "extend the eligibility and issue a new card",
    CardStatus.REVOKED: "issue a new card if the person is eligible",
}


def check_printable(status: CardStatus) -> None:
    """Only an active card is printed: any other would be refused at every check-in while
    it reads "geldig tot …"."""
    if status is not CardStatus.ACTIVE:
        raise Conflict(
            f"status: the card is {status.value}; only an active card is printed"
            f" ({_PRINT_INSTEAD[status]})"
        )
