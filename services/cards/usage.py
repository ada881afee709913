"""Card usage from the claims service's outcome events: when a card was last used, how
often, how much it brought back. The consumer logs under the check-in's correlation id, so
an operator following one check-in sees it here too."""

from __future__ import annotations

from typing import Any

from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events.claims import ClaimApproved, ClaimRejected
from shared.logging import get_logger, log_context

log = get_logger(__name__)
TOPICS = (topics.CLAIM_APPROVED, topics.CLAIM_REJECTED)


async def record_usage(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    rows = []
    for incoming in batch:
        e: ClaimApproved | ClaimRejected = incoming.payload
        if e.card_id is None:
            continue  # an unknown card number: nothing of ours was used
        approved = isinstance(e, ClaimApproved)
        amount = e.amount_cents if isinstance(e, ClaimApproved) else 0
        rows.append((e.card_id, e.occurred_at, 1 if approved else 0, amount))
        with log_context(correlation_id=incoming.correlation_id):
            log.info("card use recorded", card_id=str(e.card_id), approved=approved)
    if rows:
        # Cards issued elsewhere (another stack, a test) are skipped by the join.
        await conn.executemany(
            """
            INSERT INTO card_usage (card_id, first_used_at, last_used_at, checkins, approved,
                                    refunded_cents)
            SELECT card_id, $2, $2, 1, $3, $4 FROM cards WHERE card_id = $1
            ON CONFLICT (card_id) DO UPDATE SET
                first_used_at = least(card_usage.first_used_at, excluded.first_used_at),
                last_used_at = greatest(card_usage.last_used_at, excluded.last_used_at),
                checkins = card_usage.checkins + 1,
                approved = card_usage.approved + excluded.approved,
                refunded_cents = card_usage.refunded_cents + excluded.refunded_cents
            """,
            rows,
        )
    return []
