"""Card usage from the claims service's outcome events: when a card was last used, how
often, how much it brought back. The consumer logs under the check-in's correlation id, so
an operator following one check-in sees it here too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events.claims import ClaimApproved, ClaimRejected
from shared.logging import get_logger, log_context

log = get_logger(__name__)
TOPICS = (topics.CLAIM_APPROVED, topics.CLAIM_REJECTED)


@dataclass
class _Usage:
    first_used_at: datetime
    last_used_at: datetime
    checkins: int = 0
    approved: int = 0
    refunded_cents: int = 0


async def record_usage(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    usage: dict[uuid.UUID, _Usage] = {}
    for incoming in batch:
        e: ClaimApproved | ClaimRejected = incoming.payload
        if e.card_id is None:
            continue  # an unknown card number: nothing of ours was used
        approved = isinstance(e, ClaimApproved)
        u = usage.setdefault(e.card_id, _Usage(e.occurred_at, e.occurred_at))
        u.first_used_at = min(u.first_used_at, e.occurred_at)
        u.last_used_at = max(u.last_used_at, e.occurred_at)
        u.checkins += 1
        if isinstance(e, ClaimApproved):
            u.approved += 1
            u.refunded_cents += e.amount_cents
        with log_context(correlation_id=incoming.correlation_id):
            log.info("card use recorded", card_id=e.card_id, approved=approved)
    if usage:
        cards = sorted(usage)  # a fixed order of row locks: concurrent batches never deadlock
        # One row per card for the whole batch. Cards issued elsewhere (another stack, a
        # test) are skipped by the join.
        await conn.execute(
            """
            INSERT INTO card_usage (card_id, first_used_at, last_used_at, checkins, approved,
                                    refunded_cents)
            SELECT u.* FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[],
                                   $5::int[], $6::bigint[])
                AS u (card_id, first_used_at, last_used_at, checkins, approved, refunded_cents)
            JOIN cards USING (card_id)
            ON CONFLICT (card_id) DO UPDATE SET
                first_used_at = least(card_usage.first_used_at, excluded.first_used_at),
                last_used_at = greatest(card_usage.last_used_at, excluded.last_used_at),
                checkins = card_usage.checkins + excluded.checkins,
                approved = card_usage.approved + excluded.approved,
                refunded_cents = card_usage.refunded_cents + excluded.refunded_cents
            """,
            cards,
            [usage[c].first_used_at for c in cards],
            [usage[c].last_used_at for c in cards],
            [usage[c].checkins for c in cards],
            [usage[c].approved for c in cards],
            [usage[c].refunded_cents for c in cards],
        )
    return []
