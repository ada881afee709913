"""A refund held because no bank account can be paid (RefundHeld, claims' payment run): the
card holder hears whom to give an account to, the referrer which card it is about and where
to record it — once, however often the event is delivered; worded for why it is held."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.events.payments import HoldReason, RefundHeld
from tests.integration.notifications.conftest import NOW, Feed, card, holder, organisation

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("reason", "kind", "to_holder_says", "to_referrer_says"),
    [
        (
            HoldReason.NO_ACCOUNT,
            "refund_held",
            "we kennen uw rekeningnummer nog niet",
            "maar er is geen rekeningnummer bekend",
        ),
        (
            HoldReason.ACCOUNT_REFUSED,
            "refund_held_refused",
            "De bank heeft onze vorige overschrijving naar uw rekening geweigerd",
            "We betalen niet opnieuw naar die rekening",
        ),
    ],
)
async def test_the_holder_and_the_referrer_hear_that_a_refund_waits_for_an_account(
    feed: Feed,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    reason: HoldReason,
    kind: str,
    to_holder_says: str,
    to_referrer_says: str,
) -> None:
    org, holder_id = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(holder_id, org, keys[1]),
        card(holder_id, org),
    )
    held = RefundHeld(holder_id=holder_id, amount_cents=2_460, held_at=NOW, reason=reason)
    record = feed.record(held)
    await feed.processor.process([record, record])  # delivered twice in one batch
    await feed.processor.process([record])  # and again after a rebalance

    rows = await pool.fetch(
        "SELECT kind, recipient, body FROM deliveries WHERE kind LIKE 'refund_held%'"
    )
    told = {r["kind"]: r for r in rows}
    assert sorted(told) == [kind, f"{kind}_referrer"] and len(rows) == 2
    to_holder, to_referrer = told[kind], told[f"{kind}_referrer"]
    assert to_holder["recipient"] == f"holder:{holder_id}"
    assert to_holder_says in to_holder["body"] and "€ 24,60" in to_holder["body"]
    assert "contactpersoon" in to_holder["body"]
    assert to_referrer["recipient"] == f"org:{org}"
    assert "kaart 1234567890128 staat € 24,60 klaar" in to_referrer["body"]
    assert to_referrer_says in to_referrer["body"]
    # Nobody reading the referrer's mail learns more than the card: no name, no address.
    assert "Peeters" not in to_referrer["body"] and "Kerkstraat" not in to_referrer["body"]
