"""Every (status, action) pair: the allowed ones move the card, the others are refused
with a message naming the status that forbids them."""

from __future__ import annotations

import pytest

from services.cards.domain.errors import Conflict
from services.cards.domain.lifecycle import FINAL, CardAction, check_can_issue, next_status
from shared.events.cards import CardStatus as S

ALLOWED = {
    (S.ACTIVE, CardAction.BLOCK): S.BLOCKED,
    (S.BLOCKED, CardAction.UNBLOCK): S.ACTIVE,
    (S.ACTIVE, CardAction.REPLACE): S.REPLACED,
    (S.BLOCKED, CardAction.REPLACE): S.REPLACED,
    (S.ACTIVE, CardAction.EXPIRE): S.EXPIRED,
    (S.BLOCKED, CardAction.EXPIRE): S.EXPIRED,
    (S.ACTIVE, CardAction.REVOKE): S.REVOKED,
    (S.BLOCKED, CardAction.REVOKE): S.REVOKED,
}


@pytest.mark.parametrize(("status", "action"), [(s, a) for s in S for a in CardAction])
def test_every_transition(status: S, action: CardAction) -> None:
    expected = ALLOWED.get((status, action))
    if expected is not None:
        assert next_status(status, action) is expected
        return
    with pytest.raises(Conflict) as refused:
        next_status(status, action)
    assert refused.value.message.startswith("status: ")
    assert f"cannot {action.value} a card that is {status.value}" in refused.value.message


def test_final_statuses_allow_nothing() -> None:
    for status in FINAL:
        for action in CardAction:
            with pytest.raises(Conflict):
                next_status(status, action)


def test_blocking_an_expired_card_says_why() -> None:
    with pytest.raises(
        Conflict, match="cannot block a card that is expired; only a card that is active"
    ):
        next_status(S.EXPIRED, CardAction.BLOCK)


@pytest.mark.parametrize(
    ("held", "refused"),
    [
        ([], None),
        ([S.REPLACED, S.EXPIRED, S.REVOKED], None),
        ([S.ACTIVE], "already has an active card"),
        ([S.REPLACED, S.BLOCKED], "replace it instead"),
    ],
)
def test_one_live_card_per_person(held: list[S], refused: str | None) -> None:
    if refused is None:
        check_can_issue(held)
    else:
        with pytest.raises(Conflict, match=refused):
            check_can_issue(held)
