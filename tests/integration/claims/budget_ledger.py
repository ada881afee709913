"""A claims database whose poverty budget line (€ 100,00) fills up with approved claims of
€ 22,50 each: the fourth takes it to 90 %. For the budget watch's tests, in claims and in
notifications (which takes claims' outbox rows as they would reach it)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg

from services.claims.budget_watch import watch_budgets
from services.claims.checkins import CheckInHandler
from services.claims.policy import RefundPolicy
from shared import topics
from shared.consumer import Incoming
from shared.deadletter import SourceRecord
from shared.events.checkins import Activity, ActivityCategory
from shared.events.claims import BudgetThresholdCrossed
from shared.localtime import today
from shared.outbox import headers_from_json
from tests.integration.claims import scenario

BUDGET_CENTS = 10_000
CLAIM_CENTS = 2_250  # 75 % of € 30,00
POLICY = RefundPolicy.model_validate(
    {
        "municipality": "Proefgemeente",
        "budget_year": "program",
        "program_year_start": "09-01",
        "versions": [
            {
                "effective_from": date(2020, 1, 1),
                "discount_basis_points": {"poverty": 7500, "senior": 2500},
                "cap_per_checkin_cents": 2500,
                "yearly_budget_cents": 1_000_000,
                "eligible_categories": ["culture"],
                "budget_lines_cents": {"poverty": BUDGET_CENTS, "senior": 50_000},
            }
        ],
    }
)
THRESHOLDS = (80, 100)
_activities = itertools.count()


def budget_year() -> int:
    """The budget year claims booked today count in (transfers carry the database's now)."""
    return POLICY.budget_period(today())


@dataclass
class Ledger:
    pool: asyncpg.Pool
    world: scenario.World

    @property
    def card(self) -> str:
        return self.world.card_numbers[0]  # poverty

    async def approve(self, count: int) -> list[uuid.UUID]:
        """`count` approved claims of € 22,50, committed together."""
        incomings = []
        for _ in range(count):
            envelope, checkin = self.world.devices[0].check_in(  # a refund partner
                card_number=self.card,
                activity=Activity(
                    id=f"film-{next(_activities)}", category=ActivityCategory.CULTURE, name="Film"
                ),
                price_cents=3000,
                occurred_at=scenario.NOW - timedelta(minutes=5),
            )
            incomings.append(Incoming(envelope, checkin, self.world.record(envelope, checkin)))
        async with self.pool.acquire() as conn, conn.transaction():
            await CheckInHandler(POLICY, lambda: scenario.NOW)(conn, incomings)
            rows = await conn.fetch(
                "SELECT claim_id, outcome, amount_cents FROM claims"
                " WHERE checkin_id = ANY($1::uuid[])",
                [i.payload.checkin_id for i in incomings],
            )
        assert [(r["outcome"], r["amount_cents"]) for r in rows] == [
            ("approved", CLAIM_CENTS)
        ] * count
        return [r["claim_id"] for r in rows]

    async def cancel(self, claim_id: uuid.UUID) -> None:
        """The provider cancels the check-in: the claim is reversed in the ledger."""
        async with self.pool.acquire() as conn, conn.transaction():
            await scenario.cancel_claim(conn, self.world, self.card, claim_id, POLICY)

    async def watch(self, margin: timedelta = timedelta(0)) -> list[BudgetThresholdCrossed] | None:
        """A run of the budget watch; by default one that the margin no longer holds back
        (what a run five minutes later sees)."""
        async with self.pool.acquire() as conn:
            return await watch_budgets(conn, POLICY, THRESHOLDS, margin=margin)

    async def alerts(self) -> list[BudgetThresholdCrossed]:
        """The BudgetThresholdCrossed events in claims' outbox."""
        return [
            BudgetThresholdCrossed.model_validate_json(r["payload"])
            for r in await self.outbox_rows()
        ]

    async def outbox_rows(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT event_id, key, headers::text AS headers, payload FROM outbox"
            " WHERE topic = $1 ORDER BY seq",
            topics.BUDGET_THRESHOLD_CROSSED.name,
        )

    async def records(self) -> list[SourceRecord]:
        """The outbox rows as the relay would publish them and a consumer receive them."""
        return [
            SourceRecord(
                topics.BUDGET_THRESHOLD_CROSSED.name,
                0,
                offset,
                bytes(r["key"]),
                bytes(r["payload"]),
                headers_from_json(r["headers"]),
            )
            for offset, r in enumerate(await self.outbox_rows())
        ]

    async def consumed(self) -> dict[tuple[str, int], int]:
        rows = await self.pool.fetch("SELECT * FROM budget_line_consumption")
        return {(r["budget_line"], r["budget_year"]): int(r["consumed_cents"]) for r in rows}


async def open_ledger(dsn: str) -> Ledger:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    await scenario.prepare(pool)
    world = await scenario.build_world(pool, holders=1)
    return Ledger(pool, world)
