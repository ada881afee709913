"""Claim outcomes are routed a run at a time (a few statements per batch): the result must
be exactly what routing them one event per batch gives — the same deliveries and texts,
claims' budget thresholds in between included — on a mix of the cases that behave
differently."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.notifications.routing import TOPICS, Router
from services.notifications.settings import NotificationsSettings
from shared.consumer import BatchProcessor
from shared.db import create_pool, migrate_service
from shared.deadletter import SourceRecord
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.claims import (
    BudgetThresholdCrossed,
    ClaimRejected,
    ClaimReversed,
    RejectionReason,
    ReversalReason,
)
from tests.integration.notifications.conftest import (
    MIGRATIONS,
    NOW,
    Feed,
    approved,
    card,
    holder,
    organisation,
)
from tests.support.components import Infra

pytestmark = pytest.mark.integration


def _rejected(holder_id: uuid.UUID | None, reason: RejectionReason) -> ClaimRejected:
    return ClaimRejected(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.uuid4() if holder_id else None,
        holder_id=holder_id,
        provider_id=uuid.uuid4(),
        activity_id="zwemmen",
        reason=reason,
        detail="",
        occurred_at=NOW - timedelta(hours=1),
        decided_at=NOW,
    )


def _crossed(percent: int, consumed_cents: int) -> BudgetThresholdCrossed:
    """What claims says when the poverty line's discount cost crosses a threshold."""
    return BudgetThresholdCrossed(
        budget_line="poverty",
        budget_year=2026,
        percent=percent,
        consumed_cents=consumed_cents,
        budget_cents=10_000,
        crossed_at=NOW,
    )


def _scenario(public_key: str) -> list[EventPayload]:
    referrer = uuid.uuid4()
    by_mail, by_letter, unreachable, unknown = (uuid.uuid4() for _ in range(4))
    cancelled = approved(by_mail, 900)
    return [
        organisation(referrer, email="ocmw@example.org"),
        holder(by_mail, referrer, public_key),
        holder(by_letter, referrer, public_key, email=None, channel="letter"),
        holder(unreachable, referrer, public_key, email=None, channel="none"),
        card(by_mail, referrer, "1111111111116"),
        # A run, then claims' word that the budget line crossed 80 %, which breaks it.
        approved(by_mail, 3000),
        approved(by_letter, 3000),
        approved(by_mail, 2500),
        _crossed(80, 8500),
        _rejected(by_mail, RejectionReason.ALREADY_TODAY),
        _rejected(by_mail, RejectionReason.REPLAYED),  # never told, never recorded
        _rejected(None, RejectionReason.UNKNOWN_CARD),  # nobody to tell
        approved(unknown, 500),  # no contact details (yet): nobody to tell
        approved(unreachable, 100),  # reachable by nothing: a skipped delivery
        # A reversal that overtakes its approval breaks the run; the approval that
        # follows is neither counted nor announced.
        ClaimReversed(
            claim_id=cancelled.claim_id,
            checkin_id=cancelled.checkin_id,
            holder_id=by_mail,
            provider_id=cancelled.provider_id,
            amount_cents=900,
            reason=ReversalReason.ACTIVITY_CANCELLED,
            reversed_at=NOW,
        ),
        approved(by_letter, 1000),
        _crossed(100, 10_100),
        _crossed(80, 8500),  # published again (another event id): finance heard it already
        cancelled,
        ev.HolderErased(holder_id=unreachable, erased_at=NOW),
        approved(unreachable, 100),  # after the erasure: nobody to tell
    ]


async def _state(pool: asyncpg.Pool) -> dict[str, Any]:
    deliveries = await pool.fetch(
        "SELECT event_id, recipient, kind, channel, status, batch, subject, body, last_error"
        " FROM deliveries ORDER BY event_id, recipient"
    )
    spend = await pool.fetch("SELECT * FROM budget_spend ORDER BY budget_line, year")
    checkins = await pool.fetch("SELECT * FROM checkins ORDER BY claim_id")
    return {
        "deliveries": [tuple(r) for r in deliveries],
        "spend": [tuple(r) for r in spend],
        # recorded_at is when each one reached us, which differs between the two feeds.
        "checkins": [tuple(v for k, v in r.items() if k != "recorded_at") for r in checkins],
    }


async def _second_feed(infra: Infra, settings: NotificationsSettings) -> Feed:
    pool = await create_pool(await infra.new_database())
    await migrate_service(pool, MIGRATIONS)
    router = Router(settings)
    return Feed(BatchProcessor("notifications", TOPICS, router, pool), router, pool)


async def test_a_batch_of_outcomes_queues_what_one_event_at_a_time_would(
    infra: Infra, feed: Feed, settings: NotificationsSettings, keys: tuple[str, str]
) -> None:
    records: list[SourceRecord] = [feed.record(e) for e in _scenario(keys[1])]
    await feed.processor.process(records)
    batched = await _state(feed.pool)

    alone = await _second_feed(infra, settings)
    try:
        for record in records:
            await alone.processor.process([record])
        assert await _state(alone.pool) == batched
    finally:
        await alone.pool.close()

    kinds = Counter((r[2], r[4], r[5]) for r in batched["deliveries"])
    assert kinds == {
        ("card_issued", "scheduled", "digest"): 1,
        ("refund_approved", "pending", None): 2,
        ("refund_approved", "scheduled", "letters"): 2,
        ("refund_approved", "skipped", None): 1,
        ("refund_rejected", "pending", None): 1,
        ("budget_threshold", "pending", None): 2,
        ("refund_reversed", "pending", None): 1,
    }
    subjects = {r[6] for r in batched["deliveries"] if r[2] == "budget_threshold"}
    assert subjects == {
        "Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt",
        "Vrijetijdspas: budgetlijn kansentarief heeft 100% bereikt",
    }
    # Budget lines are claims' to count: the outcomes add nothing to the old table.
    assert batched["spend"] == []
    assert len(batched["checkins"]) == 10
