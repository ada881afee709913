"""Card usage learnt from claim outcomes: counts, refunded total, first and last use, per
card; a redelivered batch changes nothing and an unknown card is skipped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.cards import usage
from shared import topics
from shared.consumer import BatchProcessor
from shared.deadletter import SourceRecord
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.events.checkins import ActivityCategory
from shared.events.claims import (
    ClaimApproved,
    ClaimRejected,
    ClaimReversed,
    PayeeKind,
    RejectionReason,
    ReversalReason,
)
from tests.integration.cards.conftest import Desk, new_holder

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _approved(card_id: str, holder_id: str, at: datetime, cents: int) -> ClaimApproved:
    return ClaimApproved(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.UUID(card_id),
        holder_id=uuid.UUID(holder_id),
        provider_id=uuid.uuid4(),
        activity_id="zwembad",
        category=ActivityCategory.SPORT,
        target_group="poverty",
        price_cents=cents * 2,
        amount_cents=cents,
        capped=False,
        payee_kind=PayeeKind.CARD_HOLDER,
        occurred_at=at,
        decided_at=at,
    )


def _rejected(card_id: uuid.UUID | None, at: datetime) -> ClaimRejected:
    return ClaimRejected(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=card_id,
        holder_id=None,
        provider_id=uuid.uuid4(),
        activity_id="zwembad",
        reason=RejectionReason.ALREADY_TODAY,
        detail="already today",
        occurred_at=at,
        decided_at=at,
    )


def _record(offset: int, payload: EventPayload) -> SourceRecord:
    topic = topics.topic_for(payload)
    envelope = new_envelope(type=topic.event_type, source="/test")
    return SourceRecord(
        topic.name,
        0,
        offset,
        topic.key_of(payload),
        payload.model_dump_json().encode(),
        envelope.headers(),
    )


async def test_usage_is_counted_once_per_outcome_and_shown_on_the_card(desk: Desk) -> None:
    holder = await new_holder(desk.referrer, seed=1)
    card_id, person_id = holder["card_id"], holder["person_id"]
    records = [
        _record(0, _approved(card_id, person_id, T0, 350)),
        _record(1, _rejected(uuid.UUID(card_id), T0 + timedelta(hours=1))),
        _record(2, _approved(card_id, person_id, T0 - timedelta(days=3), 1200)),
        _record(3, _rejected(None, T0)),  # an unknown card number: nothing to record
        _record(4, _rejected(uuid.uuid4(), T0)),  # a card this desk never issued
    ]
    processor = BatchProcessor("cards.usage", usage.TOPICS, usage.record_usage, desk.pool)
    await processor.process(records)
    await processor.process(records)  # the broker delivers the batch again

    response = await desk.referrer.get(f"/cards/{card_id}")
    assert response.status_code == 200, response.text
    used = response.json()["usage"]
    assert used["checkins"] == 3
    assert used["approved"] == 2
    assert used["refunded_cents"] == 1550
    assert datetime.fromisoformat(used["first_used_at"]) == T0 - timedelta(days=3)
    assert datetime.fromisoformat(used["last_used_at"]) == T0 + timedelta(hours=1)
    assert await desk.pool.fetchval("SELECT count(*) FROM card_usage") == 1


def _reversal(approval: ClaimApproved, at: datetime) -> ClaimReversed:
    return ClaimReversed(
        claim_id=approval.claim_id,
        checkin_id=approval.checkin_id,
        holder_id=approval.holder_id,
        provider_id=approval.provider_id,
        amount_cents=approval.amount_cents,
        reason=ReversalReason.SCANNED_TWICE,
        reversed_at=at,
        payee_kind=approval.payee_kind,
    )


async def test_a_reversed_claim_no_longer_counts_as_approved_or_refunded(desk: Desk) -> None:
    """A provider cancels a check-in (scanned twice, did not attend): claims reverses its
    approval and the money is not paid, so the card's usage no longer shows it as approved
    or refunded, whether the reversal comes in a later batch, in the same batch, or before
    its approval (the topics are read independently)."""
    holder = await new_holder(desk.referrer, seed=2)
    card_id, person_id = holder["card_id"], holder["person_id"]
    kept = _approved(card_id, person_id, T0, 350)
    later = _approved(card_id, person_id, T0 + timedelta(hours=1), 500)
    same_batch = _approved(card_id, person_id, T0 + timedelta(hours=2), 700)
    early = _approved(card_id, person_id, T0 + timedelta(hours=3), 900)
    processor = BatchProcessor("cards.usage", usage.TOPICS, usage.record_usage, desk.pool)
    await processor.process([_record(0, kept), _record(1, later), _record(2, _reversal(early, T0))])
    await processor.process(
        [
            _record(3, _reversal(later, T0)),
            _record(4, same_batch),
            _record(5, _reversal(same_batch, T0)),
            _record(6, early),
        ]
    )
    await processor.process([_record(7, _reversal(later, T0))])  # delivered again: once

    used = (await desk.referrer.get(f"/cards/{card_id}")).json()["usage"]
    assert (used["checkins"], used["approved"], used["refunded_cents"]) == (4, 1, 350)
    assert processor.dead_lettered == 0
