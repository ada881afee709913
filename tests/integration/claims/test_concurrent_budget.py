"""Must-show 2: many check-ins for one card delivered at once through several consumers
(each its own connection pool, as separate processes would have) never exceed the budget.
Some messages reach two consumers (a rebalance replays a batch elsewhere)."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from services.claims.checkins import CheckInHandler
from services.claims.policy import RefundPolicy
from shared import topics
from shared.consumer import BatchProcessor
from shared.events.checkins import Activity, ActivityCategory
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration

BUDGET_CENTS = 6000
POLICY = RefundPolicy.model_validate(
    {
        "municipality": "Proefgemeente",
        "versions": [
            {
                "effective_from": date(2020, 1, 1),
                "discount_basis_points": {"poverty": 7500, "senior": 7500},
                "cap_per_checkin_cents": 2500,
                "yearly_budget_cents": BUDGET_CENTS,
                "eligible_categories": ["culture"],
            }
        ],
    }
)
CONSUMERS = 4
CHECKINS = 120


async def test_many_consumers_never_overspend_one_card(database: str) -> None:
    pools = [await asyncpg.create_pool(database, min_size=1, max_size=2) for _ in range(CONSUMERS)]
    try:
        await scenario.prepare(pools[0])
        world = await scenario.build_world(pools[0], holders=1)
        card = world.card_numbers[0]
        device = world.devices[0]  # a refund partner
        records = []
        for n in range(CHECKINS):
            envelope, checkin = device.check_in(
                card_number=card,
                activity=Activity(id=f"act-{n}", category=ActivityCategory.CULTURE, name="Film"),
                price_cents=4000 + n,
                occurred_at=scenario.NOW - timedelta(minutes=n),
            )
            records.append(world.record(envelope, checkin))
        rng = random.Random(7)
        shares: list[list[object]] = [[] for _ in range(CONSUMERS)]
        for record in records:
            shares[rng.randrange(CONSUMERS)].append(record)
            if rng.random() < 0.2:  # delivered to a second consumer too
                shares[rng.randrange(CONSUMERS)].append(record)
        handler = CheckInHandler(POLICY, lambda: scenario.NOW)
        refused: list[str] = []

        async def counting(conn: Any, batch: list[Any]) -> Any:
            try:
                return await handler(conn, batch)
            except asyncpg.IntegrityConstraintViolationError as exc:
                refused.append(type(exc).__name__)
                raise

        processors = [
            BatchProcessor("claims.checkins", (topics.CHECKIN_RECORDED,), counting, pool)
            for pool in pools
        ]

        async def consume(processor: BatchProcessor, share: list[object]) -> None:
            for start in range(0, len(share), 7):  # small batches interleave the most
                await processor.process(share[start : start + 7])  # type: ignore[arg-type]

        await asyncio.gather(*(consume(p, s) for p, s in zip(processors, shares, strict=True)))

        holder = world.cards[card].holder_id
        async with pools[0].acquire() as conn:
            claims = await conn.fetch(
                "SELECT checkin_id, outcome, reason, amount_cents FROM claims WHERE holder_id = $1",
                holder,
            )
            used = await conn.fetchval(
                "SELECT sum(used_cents) FROM budget_usage WHERE holder_id = $1", holder
            )
            payable = await conn.fetchval(
                "SELECT coalesce(sum(amount_cents), 0) FROM transfers WHERE credit_account = $1",
                f"payable:holder:{holder}",
            )
        assert len(claims) == CHECKINS == len({c["checkin_id"] for c in claims})
        approved = sum(int(c["amount_cents"]) for c in claims)
        assert approved == used == payable == BUDGET_CENTS
        reasons = {c["reason"] for c in claims if c["outcome"] == "rejected"}
        assert reasons == {"budget_exhausted"}
        # The holder lock serialised the consumers: not one batch ran into a constraint
        # (the budget CHECK, the unique check-in) and had to be retried message by message.
        assert refused == []
        assert sum(p.dead_lettered for p in processors) == 0
    finally:
        for pool in pools:
            await pool.close()
