"""Card usage from the claims service's outcome events: when a card was last used, how
often, how much it brought back. A reversal (the provider cancelled the check-in) takes its
approval and refund back out; the check-in still counts as one. The consumer logs under the
check-in's correlation id, so an operator following one check-in sees it here too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events.claims import ClaimApproved, ClaimRejected, ClaimReversed
from shared.logging import get_logger, log_context

log = get_logger(__name__)
TOPICS = (topics.CLAIM_APPROVED, topics.CLAIM_REJECTED, topics.CLAIM_REVERSED)


@dataclass
class _Usage:
    first_used_at: datetime
    last_used_at: datetime
    checkins: int = 0
    approved: int = 0
    refunded_cents: int = 0


async def record_usage(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    outcomes = [i for i in batch if not isinstance(i.payload, ClaimReversed)]
    reversals = [i.payload for i in batch if isinstance(i.payload, ClaimReversed)]
    # Approvals first: a reversal in the same batch then finds the card it takes back from.
    already_reversed = await _remember_approvals(
        conn,
        [i.payload for i in outcomes if isinstance(i.payload, ClaimApproved)],
    )
    usage: dict[uuid.UUID, _Usage] = {}
    for incoming in outcomes:
        e: ClaimApproved | ClaimRejected = incoming.payload
        if e.card_id is None:
            continue  # an unknown card number: nothing of ours was used
        approved = isinstance(e, ClaimApproved)
        u = usage.setdefault(e.card_id, _Usage(e.occurred_at, e.occurred_at))
        u.first_used_at = min(u.first_used_at, e.occurred_at)
        u.last_used_at = max(u.last_used_at, e.occurred_at)
        u.checkins += 1
        if isinstance(e, ClaimApproved) and e.claim_id not in already_reversed:
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
    if reversals:
        await _take_back(conn, reversals)
    return []


async def _remember_approvals(conn: DbConnection, approvals: list[ClaimApproved]) -> set[uuid.UUID]:
    """Keeps each approval's card and amount for a later reversal; the approvals whose
    reversal came first (they are counted as check-ins only)."""
    if not approvals:
        return set()
    # One row per claim (a statement may not update a row twice), in a fixed lock order.
    approvals = sorted({e.claim_id: e for e in approvals}.values(), key=lambda e: e.claim_id)
    rows = await conn.fetch(
        """
        INSERT INTO card_usage_claims (claim_id, card_id, amount_cents)
        SELECT a.* FROM unnest($1::uuid[], $2::uuid[], $3::bigint[])
            AS a (claim_id, card_id, amount_cents)
        JOIN cards USING (card_id)
        ON CONFLICT (claim_id) DO UPDATE SET
            card_id = excluded.card_id, amount_cents = excluded.amount_cents
        RETURNING claim_id, reversed
        """,
        [e.claim_id for e in approvals],
        [e.card_id for e in approvals],
        [e.amount_cents for e in approvals],
    )
    return {r["claim_id"] for r in rows if r["reversed"]}


async def _take_back(conn: DbConnection, reversals: list[ClaimReversed]) -> None:
    """Marks the claims reversed (once, however often the reversal is delivered) and takes
    the approvals already counted back out of their cards' usage."""
    newly = await conn.fetch(
        """
        INSERT INTO card_usage_claims (claim_id, reversed)
        SELECT unnest($1::uuid[]), true
        ON CONFLICT (claim_id) DO UPDATE SET reversed = true
            WHERE NOT card_usage_claims.reversed
        RETURNING card_id, amount_cents
        """,
        sorted({e.claim_id for e in reversals}),
    )
    taken: dict[uuid.UUID, tuple[int, int]] = {}
    for row in newly:
        if row["card_id"] is not None:  # else its approval is not here (yet)
            count, cents = taken.get(row["card_id"], (0, 0))
            taken[row["card_id"]] = (count + 1, cents + row["amount_cents"])
    if taken:
        cards = sorted(taken)  # the same lock order as the insert above
        await conn.execute(
            """
            UPDATE card_usage u SET approved = u.approved - t.approved,
                                    refunded_cents = u.refunded_cents - t.refunded_cents
            FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS t (card_id, approved, refunded_cents)
            WHERE u.card_id = t.card_id
            """,
            cards,
            [taken[c][0] for c in cards],
            [taken[c][1] for c in cards],
        )
