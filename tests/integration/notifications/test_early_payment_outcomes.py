"""Finance's answer (PaymentSettled / PaymentFailed) travels on other topics than the payment
request, so it can be processed first. The card holder still hears that the refund was
paid, the referrer that it failed: once, when the request arrives, whatever is delivered
again — on a real database, through the real batch consumer (inbox included)."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg
import pytest

from shared.events.claims import PayeeKind
from shared.events.payments import PaymentFailed, PaymentRequested, PaymentSettled
from tests.integration.notifications.conftest import (
    NOW,
    Feed,
    card,
    holder,
    organisation,
    payment_requested,
)

pytestmark = pytest.mark.integration


def settled(request: PaymentRequested) -> PaymentSettled:
    return PaymentSettled(
        payment_id=request.payment_id,
        amount_cents=request.amount_cents,
        settled_at=NOW,
        bank_reference="B1",
    )


def failed(request: PaymentRequested) -> PaymentFailed:
    return PaymentFailed(
        payment_id=request.payment_id,
        amount_cents=request.amount_cents,
        failed_at=NOW,
        reason_code="AC04",
        reason="Closed account",
    )


async def person(feed: Feed, keys: tuple[str, str]) -> uuid.UUID:
    org, holder_id = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(holder_id, org, keys[1]),
        card(holder_id, org),
    )
    return holder_id


async def told(pool: asyncpg.Pool) -> Counter[tuple[str, str]]:
    rows = await pool.fetch("SELECT kind, recipient FROM deliveries")
    return Counter((r["kind"], r["recipient"].split(":")[0]) for r in rows)


async def test_a_settlement_before_its_request_is_announced_once_when_the_request_arrives(
    feed: Feed, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    holder_id = await person(feed, keys)
    request = payment_requested(holder_id)
    answer = feed.record(settled(request))
    await feed.processor.process([answer])
    assert ("refund_paid", "holder") not in await told(pool)  # nothing to go by yet
    first = feed.record(request)
    await feed.processor.process([first])
    # Everything delivered again changes nothing.
    await feed.processor.process([answer, first])
    assert await told(pool) == Counter(
        {("card_issued", "org"): 1, ("payment_requested", "org"): 1, ("refund_paid", "holder"): 1}
    )
    paid = await pool.fetchrow(
        "SELECT event_id, correlation_id, subject FROM deliveries WHERE kind = 'refund_paid'"
    )
    assert paid is not None
    assert "€ 9,90 gestort op uw rekening" in paid["subject"]
    # Told under the settlement's own id, as if it had come after the request.
    assert str(paid["event_id"]) == dict(answer.headers)["ce_id"].decode()
    assert await pool.fetchval("SELECT count(*) FROM early_payment_outcomes") == 0


async def test_a_failure_before_its_request_reaches_the_referrer_in_the_same_batch_too(
    feed: Feed, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    holder_id = await person(feed, keys)
    request = payment_requested(holder_id)
    await feed(failed(request), request)
    assert await told(pool) == Counter(
        {("card_issued", "org"): 1, ("payment_requested", "org"): 1, ("payment_failed", "org"): 1}
    )
    body = await pool.fetchval("SELECT body FROM deliveries WHERE kind = 'payment_failed'")
    assert "met kaart 1234567890128 is mislukt: de rekening is afgesloten." in body


async def test_in_order_nothing_is_parked_and_a_provider_s_answer_tells_no_holder(
    feed: Feed, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    holder_id = await person(feed, keys)
    request = payment_requested(holder_id)
    await feed(request)
    await feed(settled(request))
    assert (await told(pool))[("refund_paid", "holder")] == 1
    assert await pool.fetchval("SELECT count(*) FROM early_payment_outcomes") == 0

    reimbursement = payment_requested(uuid.uuid4()).model_copy(
        update={"payee_kind": PayeeKind.PROVIDER}
    )
    await feed(settled(reimbursement))
    assert await pool.fetchval("SELECT count(*) FROM early_payment_outcomes") == 1
    await feed(reimbursement)
    assert await pool.fetchval("SELECT count(*) FROM early_payment_outcomes") == 0
    assert (await told(pool))[("refund_paid", "holder")] == 1
