"""The chaos run's check of what card holders were told, against the claims it decided."""

from __future__ import annotations

from typing import Any

from vtp.chaos.run import _notification_problems

HOLDER = "holder:7d0f4c0e-0000-4000-8000-000000000001"


def _claim(payee_kind: str, *, reversed_: bool) -> dict[str, Any]:
    return {
        "holder_id": HOLDER.removeprefix("holder:"),
        "reversed_at": "2026-11-28T10:00:00Z" if reversed_ else None,
        "payee_kind": payee_kind,
    }


ROWS = {
    "c1": _claim("provider", reversed_=True),
    "c2": _claim("card_holder", reversed_=True),
    "c3": _claim("card_holder", reversed_=False),
}


def test_each_reversal_is_told_once_in_the_words_of_what_the_approval_paid() -> None:
    notified = {
        (HOLDER, "outcome"): 3,
        (HOLDER, "till_discount_reversed"): 1,
        (HOLDER, "refund_reversed"): 1,
    }
    assert _notification_problems(ROWS, notified) == []


def test_a_lapsed_till_discount_told_as_a_withdrawn_refund_is_a_problem() -> None:
    notified = {(HOLDER, "outcome"): 3, (HOLDER, "refund_reversed"): 2}
    assert _notification_problems(ROWS, notified) == [
        f"{HOLDER}: 1 reversals told as refund_reversed, 2 messages",
        f"{HOLDER}: 1 reversals told as till_discount_reversed, 0 messages",
    ]


def test_an_approval_overtaken_by_its_reversal_may_go_unannounced_but_no_more() -> None:
    reversals = {(HOLDER, "till_discount_reversed"): 1, (HOLDER, "refund_reversed"): 1}
    assert _notification_problems(ROWS, {(HOLDER, "outcome"): 1, **reversals}) == []
    assert _notification_problems(ROWS, {(HOLDER, "outcome"): 0, **reversals}) == [
        f"{HOLDER}: 3 outcomes, 0 outcome messages"
    ]
