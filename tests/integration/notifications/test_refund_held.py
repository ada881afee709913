"""A refund held for want of a bank account (RefundHeld, claims' payment run): the card
holder hears whom to give their account to, the referrer which card it is about and where
to record it — once, however often the event is delivered."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.events.payments import RefundHeld
from tests.integration.notifications.conftest import NOW, Feed, card, holder, organisation

pytestmark = pytest.mark.integration


async def test_the_holder_and_the_referrer_hear_that_a_refund_waits_for_an_account(
    feed: Feed, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, holder_id = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(holder_id, org, keys[1]),
        card(holder_id, org),
    )
    held = RefundHeld(holder_id=holder_id, amount_cents=2_460, held_at=NOW)
    record = feed.record(held)
    await feed.processor.process([record, record])  # delivered twice in one batch
    await feed.processor.process([record])  # and again after a rebalance

    rows = await pool.fetch(
        "SELECT kind, recipient, subject, body FROM deliveries WHERE kind LIKE 'refund_held%'"
    )
    told = {r["kind"]: r for r in rows}
    assert sorted(told) == ["refund_held", "refund_held_referrer"] and len(rows) == 2
    to_holder, to_referrer = told["refund_held"], told["refund_held_referrer"]
    assert to_holder["recipient"] == f"holder:{holder_id}"
    assert to_holder["subject"] == "Vrijetijdspas: uw terugbetaling wacht op uw rekeningnummer"
    assert "Er staat € 24,60 klaar om u terug te betalen" in to_holder["body"]
    assert "contactpersoon" in to_holder["body"]
    assert to_referrer["recipient"] == f"org:{org}"
    assert (
        "Voor de kaarthouder met kaart 1234567890128 staat € 24,60 klaar, maar er is geen"
        " rekeningnummer bekend." in to_referrer["body"]
    )
    # Nobody reading the referrer's mail learns more than the card: no name, no address.
    assert "Peeters" not in to_referrer["body"] and "Kerkstraat" not in to_referrer["body"]
