"""Claims tells finance when a budget line nears its limit: from the discount cost booked in
its own ledger, against the budget in its own policy, once per line, budget year and
threshold — whatever reversals, reruns and a second claims process do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.claims.budget_watch import watch_budgets
from shared import topics
from shared.envelope import parse_headers
from shared.outbox import headers_from_json
from tests.integration.claims.budget_ledger import (
    BUDGET_CENTS,
    CLAIM_CENTS,
    POLICY,
    THRESHOLDS,
    Ledger,
    budget_year,
    open_ledger,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def ledger(database: str) -> AsyncIterator[Ledger]:
    opened = await open_ledger(database)
    try:
        yield opened
    finally:
        await opened.pool.close()


async def test_crossing_80_percent_is_announced_once(ledger: Ledger) -> None:
    await ledger.approve(3)  # 67.5 %
    assert await ledger.watch() == []
    await ledger.approve(1)  # 90 %
    [announced] = await ledger.watch() or []
    assert announced.model_dump(exclude={"crossed_at"}) == {
        "budget_line": "poverty",
        "budget_year": budget_year(),
        "percent": 80,
        "consumed_cents": 4 * CLAIM_CENTS,
        "budget_cents": BUDGET_CENTS,
    }
    assert await ledger.alerts() == [announced]
    [row] = await ledger.outbox_rows()
    assert bytes(row["key"]) == b"poverty"
    envelope = parse_headers(headers_from_json(row["headers"]))
    assert envelope.type == topics.BUDGET_THRESHOLD_CROSSED.event_type
    assert envelope.id == row["event_id"]

    # Run again, and again after nothing new: nothing more to say.
    assert await ledger.watch() == []
    assert await ledger.alerts() == [announced]
    assert await ledger.consumed() == {("poverty", budget_year()): 4 * CLAIM_CENTS}


async def test_a_reversal_and_a_new_approval_do_not_announce_80_percent_twice(
    ledger: Ledger,
) -> None:
    claims = await ledger.approve(4)  # 90 %
    assert [a.percent for a in await ledger.watch() or []] == [80]
    await ledger.cancel(claims[0])  # back to 67.5 %
    assert await ledger.watch() == []
    assert await ledger.consumed() == {("poverty", budget_year()): 3 * CLAIM_CENTS}
    await ledger.approve(1)  # 90 % again
    assert await ledger.watch() == []
    assert [a.percent for a in await ledger.alerts()] == [80]
    await ledger.approve(1)  # 112.5 %: the next threshold is news
    assert [a.percent for a in await ledger.watch() or []] == [100]
    assert [(a.percent, a.consumed_cents) for a in await ledger.alerts()] == [
        (80, 4 * CLAIM_CENTS),
        (100, 5 * CLAIM_CENTS),
    ]


async def test_a_transfer_younger_than_the_margin_waits_for_a_later_run(
    ledger: Ledger,
) -> None:
    await ledger.approve(4)
    # Booked just now: a transaction that began before this moment may not have committed
    # yet, so a run counts only up to five minutes ago.
    assert await ledger.watch(margin=timedelta(minutes=5)) == []
    assert await ledger.consumed() == {}
    # Five minutes later the next run counts it, from where the last one stopped.
    assert [a.percent for a in await ledger.watch() or []] == [80]
    assert await ledger.consumed() == {("poverty", budget_year()): 4 * CLAIM_CENTS}


async def test_a_second_claims_process_never_counts_the_same_transfers(
    ledger: Ledger,
) -> None:
    await ledger.approve(4)
    async with ledger.pool.acquire() as other, other.transaction():
        await other.execute("SELECT * FROM budget_watch_progress FOR UPDATE")
        # Another process is running the watch: this one skips at once, without waiting.
        assert await asyncio.wait_for(ledger.watch(), 5) is None
    assert await ledger.consumed() == {}

    async def run() -> object:
        async with ledger.pool.acquire() as conn:
            return await watch_budgets(conn, POLICY, THRESHOLDS, margin=timedelta(0))

    await asyncio.gather(run(), run(), run())
    assert await ledger.consumed() == {("poverty", budget_year()): 4 * CLAIM_CENTS}
    assert [a.percent for a in await ledger.alerts()] == [80]


async def test_crossings_found_in_a_budget_year_long_over_are_recorded_not_announced(
    ledger: Ledger,
) -> None:
    """The first run counts the whole ledger: a past year's crossings are history."""
    # Budget year 2023 (from 1 September), before the watch existed.
    await _book(ledger, "expense:discount:poverty", BUDGET_CENTS, datetime(2024, 6, 1, tzinfo=UTC))
    await ledger.approve(4)
    assert [(a.budget_year, a.percent) for a in await ledger.watch() or []] == [(budget_year(), 80)]
    assert [(a.budget_year, a.percent) for a in await ledger.alerts()] == [(budget_year(), 80)]
    recorded = await ledger.pool.fetch(
        "SELECT budget_year, percent, announced FROM budget_alerts ORDER BY 1, 2"
    )
    assert [tuple(r) for r in recorded] == [
        (2023, 80, False),
        (2023, 100, False),
        (budget_year(), 80, True),
    ]


async def test_a_line_without_a_budget_is_counted_and_never_announced(ledger: Ledger) -> None:
    await _book(
        ledger, "expense:discount:youth", 1_000_000, datetime.now(UTC) - timedelta(minutes=1)
    )
    assert await ledger.watch() == []
    assert await ledger.consumed() == {("youth", budget_year()): 1_000_000}
    assert await ledger.alerts() == []


async def _book(ledger: Ledger, cost_account: str, cents: int, at: datetime) -> None:
    """A claim's cost booked at `at` (as an older release of claims did, say)."""
    payable = f"payable:holder:{uuid.uuid4()}"
    async with ledger.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO accounts (account, kind) VALUES ($1, 'expense'), ($2, 'payable')"
            " ON CONFLICT DO NOTHING",
            cost_account,
            payable,
        )
        await conn.execute(
            "INSERT INTO transfers (transfer_id, debit_account, credit_account, amount_cents,"
            " code, claim_id, created_at) VALUES ($1, $2, $3, $4, 'claim_approved', $5, $6)",
            uuid.uuid4(),
            cost_account,
            payable,
            cents,
            uuid.uuid4(),
            at,
        )
