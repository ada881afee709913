"""A cancellation racing its check-in: whichever transaction takes the holder lock first,
the other sees its effect, so a cancelled activity is never refunded. Either way the
provider's reason code is what claims keeps and passes on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from shared import topics
from shared.consumer import BatchProcessor, Incoming
from shared.events.checkins import CancellationReason, CheckInCancelled, CheckInRecorded
from tests.integration.claims import scenario
from tests.support.cancellations import signed_cancellation
from tests.support.locks import second_waits_for_first

pytestmark = pytest.mark.integration


@dataclass
class Race:
    pool: asyncpg.Pool
    world: scenario.World
    holder: Any
    checkin: Incoming[CheckInRecorded]
    cancel: Incoming[CheckInCancelled]


@pytest.fixture
async def race(database: str) -> AsyncIterator[Race]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        checkin = world.senior_checkin()
        card = checkin.payload.card_number
        cancel_envelope, cancel = signed_cancellation(
            world.devices[0],
            checkin_id=checkin.payload.checkin_id,
            card_number=card,
            reason=CancellationReason.SCANNED_IN_ERROR,
            cancelled_at=scenario.NOW,
        )
        yield Race(
            pool,
            world,
            world.cards[card].holder_id,
            checkin,
            Incoming(cancel_envelope, cancel, world.record(cancel_envelope, cancel)),
        )
    finally:
        await pool.close()


async def test_a_cancellation_waits_for_the_checkin_batch_and_reverses_its_claim(
    race: Race,
) -> None:
    policy = scenario.policy()
    checkins = CheckInHandler(policy, lambda: scenario.NOW)
    cancellations = BatchProcessor(
        "claims.cancellations", (topics.CHECKIN_CANCELLED,), CancellationHandler(policy), race.pool
    )
    # The check-in batch has locked the holder, read "no pending cancellation" and written
    # an approved claim, but not committed yet.
    await second_waits_for_first(
        race.pool,
        lambda conn: checkins(conn, [race.checkin]),
        lambda: cancellations.process([race.cancel.source]),
    )

    checkin_id = race.checkin.payload.checkin_id
    async with race.pool.acquire() as conn:
        claim = await conn.fetchrow(
            "SELECT claim_id, outcome, amount_cents, reversed_at, reversal_reason FROM claims"
            " WHERE checkin_id = $1",
            checkin_id,
        )
        assert claim is not None
        assert claim["outcome"] == "approved" and claim["amount_cents"] > 0
        assert claim["reversed_at"] is not None
        assert claim["reversal_reason"] == "scanned_in_error"
        # The ClaimReversed carries the provider's code, as a ReversalReason.
        [published] = await conn.fetch(
            "SELECT payload FROM outbox WHERE topic = $1", topics.CLAIM_REVERSED.name
        )
        reversal = json.loads(published["payload"])
        assert reversal["claim_id"] == str(claim["claim_id"])
        assert reversal["reason"] == "scanned_in_error"
        approved = await conn.fetch(
            "SELECT transfer_id, debit_account, credit_account, amount_cents FROM transfers"
            " WHERE claim_id = $1 AND code = 'claim_approved'",
            claim["claim_id"],
        )
        reversals = await conn.fetch(
            "SELECT reverses, debit_account, credit_account, amount_cents FROM transfers"
            " WHERE claim_id = $1 AND code = 'claim_reversed'",
            claim["claim_id"],
        )
        assert approved
        assert {(r["reverses"], r["debit_account"], r["credit_account"]) for r in reversals} == {
            (t["transfer_id"], t["credit_account"], t["debit_account"]) for t in approved
        }
        assert (
            await conn.fetchval(
                "SELECT sum(used_cents) FROM budget_usage WHERE holder_id = $1", race.holder
            )
            == 0
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM pending_cancellations WHERE checkin_id = $1", checkin_id
        )


async def test_a_checkin_batch_waits_for_the_cancellation_and_is_rejected(race: Race) -> None:
    policy = scenario.policy()
    checkins = BatchProcessor(
        "claims.checkins",
        (topics.CHECKIN_RECORDED,),
        CheckInHandler(policy, lambda: scenario.NOW),
        race.pool,
    )
    # The cancellation came first: it finds no claim and parks, not committed yet.
    await second_waits_for_first(
        race.pool,
        lambda conn: CancellationHandler(policy)(conn, [race.cancel]),
        lambda: checkins.process([race.checkin.source]),
    )

    checkin_id = race.checkin.payload.checkin_id
    async with race.pool.acquire() as conn:
        claim = await conn.fetchrow(
            "SELECT outcome, reason, detail, amount_cents FROM claims WHERE checkin_id = $1",
            checkin_id,
        )
        assert claim is not None
        assert (claim["outcome"], claim["reason"]) == ("rejected", "checkin_cancelled")
        # The parked cancellation's code is all its rejection says of why.
        assert claim["detail"] == "cancelled by the provider: scanned_in_error"
        assert not await conn.fetchval(
            "SELECT count(*) FROM pending_cancellations WHERE checkin_id = $1", checkin_id
        )
