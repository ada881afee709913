"""Migration 0016: the free text a provider gave as a cancellation's reason before it became
a code is not kept, and a cancellation parked with such a text cannot publish it in its
check-in's rejection when the check-in arrives."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from shared.consumer import Incoming
from shared.events.checkins import CancellationReason
from tests.integration.claims import scenario
from tests.support.cancellations import signed_cancellation

pytestmark = pytest.mark.integration

MIGRATION = (
    Path(__file__).parents[3]
    / "services"
    / "claims"
    / "migrations"
    / "0016_cancellation_reason_codes.sql"
)
TYPED = "klant was ziek, verkeerde kaart gescand bij Jan"


async def test_free_text_reasons_become_other_and_codes_stay(database: str) -> None:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        policy = scenario.policy()
        card = world.card_numbers[1]
        checkins = []
        for minutes, activity in ((30, 1), (20, 0), (10, 2)):
            envelope, checkin = world.devices[0].check_in(  # a refund partner
                card_number=card,
                activity=scenario.ACTIVITIES[activity],
                price_cents=4500,
                occurred_at=scenario.NOW - timedelta(minutes=minutes),
            )
            checkins.append(Incoming(envelope, checkin, world.record(envelope, checkin)))
        parked_with_text, approved, parked_with_code = checkins
        async with pool.acquire() as conn, conn.transaction():
            await CheckInHandler(policy, lambda: scenario.NOW)(conn, [approved])
            envelope, cancel = signed_cancellation(
                world.devices[0],
                checkin_id=approved.payload.checkin_id,
                card_number=card,
                reason=CancellationReason.REFUNDED_AT_TILL,
                cancelled_at=scenario.NOW,
            )
            await CancellationHandler(policy)(
                conn, [Incoming(envelope, cancel, world.record(envelope, cancel))]
            )
            reversed_claim = await conn.fetchrow(
                "SELECT outcome, reversal_reason FROM claims WHERE checkin_id = $1",
                approved.payload.checkin_id,
            )
            assert reversed_claim is not None
            assert tuple(reversed_claim) == ("approved", "refunded_at_till")
            # As an earlier release stored them: the provider's text, and one code.
            await conn.execute(
                "UPDATE claims SET reversal_reason = $2 WHERE checkin_id = $1",
                approved.payload.checkin_id,
                TYPED,
            )
            for incoming, reason in (
                (parked_with_text, TYPED),
                (parked_with_code, "scanned_twice"),
            ):
                await conn.execute(
                    "INSERT INTO pending_cancellations (checkin_id, provider_id, reason,"
                    " cancelled_at) VALUES ($1, $2, $3, $4)",
                    incoming.payload.checkin_id,
                    incoming.payload.provider_id,
                    reason,
                    scenario.NOW,
                )

            await conn.execute(MIGRATION.read_text())

            assert (
                await conn.fetchval(
                    "SELECT reversal_reason FROM claims WHERE checkin_id = $1",
                    approved.payload.checkin_id,
                )
                == "other"
            )
            # The check-ins arrive: their rejections say the codes, never the text.
            await CheckInHandler(policy, lambda: scenario.NOW)(
                conn, [parked_with_text, parked_with_code]
            )
            details = {
                r["checkin_id"]: (r["reason"], r["detail"])
                for r in await conn.fetch("SELECT checkin_id, reason, detail FROM claims")
            }
            assert details[parked_with_text.payload.checkin_id] == (
                "checkin_cancelled",
                "cancelled by the provider: other",
            )
            assert details[parked_with_code.payload.checkin_id] == (
                "checkin_cancelled",
                "cancelled by the provider: scanned_twice",
            )
            published = await conn.fetch("SELECT payload FROM outbox")
            assert published and not any(TYPED.encode() in r["payload"] for r in published)
    finally:
        await pool.close()
