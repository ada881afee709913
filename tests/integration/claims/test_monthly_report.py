"""Finance's monthly report on a real PostgreSQL: Belgian months, reversals in the month they
are booked, and totals per payer and per provider that are the ledger's, also while claims
are being booked as the report is read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from services.claims import ledger
from services.claims.policy import RefundPolicy
from services.claims.reports import month_bounds, monthly_report
from shared.db import DbConnection
from shared.ids import uuid7
from shared.localtime import LOCAL_TIME
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration

POLICY = RefundPolicy.model_validate(
    {
        "municipality": "Proefgemeente",
        "versions": [
            {
                "effective_from": date(2020, 1, 1),
                "discount_basis_points": {"poverty": 7500, "senior": 2500},
                "cap_per_checkin_cents": 2500,
                "yearly_budget_cents": 15000,
                "eligible_categories": ["culture"],
                "budget_lines_cents": {"poverty": 100_000, "senior": 50_000},
            }
        ],
    }
)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=3)
    await scenario.prepare(pool)
    try:
        yield pool
    finally:
        await pool.close()


async def _book(
    conn: DbConnection,
    provider_id: uuid.UUID,
    group: str,
    shares: dict[str, int],
    at: datetime,
) -> list[ledger.Transfer]:
    """An approved claim whose payer shares are booked at `at`."""
    claim_id, holder_id = uuid7(), uuid.uuid4()
    amount = sum(shares.values())
    await conn.execute(
        "INSERT INTO claims (claim_id, checkin_id, event_id, correlation_id, holder_id,"
        " provider_id, device_id, activity_id, category, target_group, price_cents,"
        " amount_cents, outcome, payee_kind, occurred_at, decided_at)"
        " VALUES ($1, $2, $3, 'c', $4, $5, $6, 'film', 'culture', $7, $8, $8, 'approved',"
        " 'card_holder', $9, $9)",
        claim_id,
        uuid.uuid4(),
        uuid.uuid4(),
        holder_id,
        provider_id,
        uuid.uuid4(),
        group,
        amount,
        at,
    )
    payable = ledger.payable_account("card_holder", holder_id)
    transfers = [
        ledger.Transfer(
            uuid7(),
            ledger.cost_account(payer, group, provider_id),
            payable,
            cents,
            "claim_approved",
            claim_id=claim_id,
        )
        for payer, cents in shares.items()
    ]
    await _post_at(conn, transfers, at)
    return transfers


async def _post_at(conn: DbConnection, transfers: list[ledger.Transfer], at: datetime) -> None:
    """Posts with a booking time in the past (created_at is the database's now otherwise)."""
    accounts = sorted({t.debit_account for t in transfers} | {t.credit_account for t in transfers})
    await conn.execute(
        "INSERT INTO accounts (account, kind) SELECT a, split_part(a, ':', 1)"
        " FROM unnest($1::text[]) a ON CONFLICT DO NOTHING",
        accounts,
    )
    await conn.executemany(
        "INSERT INTO transfers (transfer_id, debit_account, credit_account, amount_cents, code,"
        " claim_id, reverses, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                t.transfer_id,
                t.debit_account,
                t.credit_account,
                t.amount_cents,
                t.code,
                t.claim_id,
                t.reverses,
                at,
            )
            for t in transfers
        ],
    )


async def _reverse(conn: DbConnection, transfers: list[ledger.Transfer], at: datetime) -> None:
    await _post_at(conn, [ledger.reversal_of(t, "claim_reversed") for t in transfers], at)


async def _cost_in(conn: DbConnection, month: str) -> int:
    """The ledger's own answer: net debits on cost accounts booked in the Belgian month."""
    start, end = month_bounds(month)
    total = await conn.fetchval(
        "SELECT coalesce(sum(CASE WHEN debit_account ~ '^(expense|receivable):'"
        " THEN amount_cents ELSE -amount_cents END), 0) FROM transfers"
        " WHERE (debit_account ~ '^(expense|receivable):' OR credit_account ~ '^(expense|receivable):')"
        " AND created_at >= $1 AND created_at < $2",
        start,
        end,
    )
    return int(total)


def _totals(report: dict[str, Any]) -> tuple[int, int]:
    return (
        sum(line["net_cents"] for line in report["per_payer"]),
        sum(line["net_cents"] for line in report["per_provider"]),
    )


async def test_a_month_is_belgian_and_reversals_count_when_booked(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        sport = await scenario.provider_row(conn, "Sportdienst")
        culture = await scenario.provider_row(conn, "Cultuurcentrum")
        # 1 March 00:30 in Heist, still February in UTC: March's.
        await _book(
            conn,
            sport,
            "poverty",
            {"municipality": 1000},
            datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
        )
        # 1 April 00:30 in Heist (summer time), still 31 March in UTC: April's.
        await _book(
            conn, sport, "poverty", {"municipality": 700}, datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
        )
        shared = await _book(
            conn,
            culture,
            "senior",
            {"provider": 200, "government:vlaanderen": 300, "municipality": 1500},
            datetime(2026, 3, 15, 12, 0, tzinfo=UTC),
        )
        await _reverse(conn, shared, datetime(2026, 4, 2, 9, 0, tzinfo=UTC))
        february = await _book(
            conn, sport, "poverty", {"municipality": 800}, datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
        )
        await _reverse(conn, february, datetime(2026, 3, 5, 9, 0, tzinfo=UTC))

        march = await monthly_report(conn, POLICY, "2026-03")
        april = await monthly_report(conn, POLICY, "2026-04")
        assert _totals(march) == (2000 + 1000 - 800,) * 2 == (await _cost_in(conn, "2026-03"),) * 2
        assert _totals(april) == (700 - 2000,) * 2 == (await _cost_in(conn, "2026-04"),) * 2
    per_payer = {(p["payer"], p["detail"]): p for p in march["per_payer"]}
    assert {k: (v["shares"], v["reversed"], v["net_cents"]) for k, v in per_payer.items()} == {
        ("municipality", "poverty"): (1, 1, 200),
        ("municipality", "senior"): (1, 0, 1500),
        ("provider", str(culture)): (1, 0, 200),
        ("government:vlaanderen", ""): (1, 0, 300),
    }
    per_provider = {
        p["provider"]: (p["claims"], p["reversed"], p["net_cents"]) for p in march["per_provider"]
    }
    assert per_provider == {"Sportdienst": (1, 1, 200), "Cultuurcentrum": (1, 0, 2000)}
    lines = {b["budget_line"]: b for b in march["budget_lines"]}
    assert (lines["poverty"]["consumed_cents"], lines["poverty"]["budget_year"]) == (1000, 2026)
    assert lines["senior"]["consumed_cents"] == 1500
    assert lines["poverty"]["remaining_cents"] == 99_000


class _BookingMeanwhile:
    """A connection on which, after the report's first query, another transaction books
    a claim and commits: what finance's report meets while the check-ins keep coming."""

    def __init__(self, conn: Any, book: Any) -> None:
        self._conn = conn
        self._book = book
        self._queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def fetch(self, *args: Any) -> Any:
        rows = await self._conn.fetch(*args)
        self._queries += 1
        if self._queries == 1:
            await self._book()
        return rows


async def test_the_totals_agree_while_claims_are_booked(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        sport = await scenario.provider_row(conn, "Sportdienst")
        now = await conn.fetchval("SELECT now()")
        month = now.astimezone(LOCAL_TIME).strftime("%Y-%m")
        await _book(conn, sport, "poverty", {"municipality": 1000}, now)

    async def book_another() -> None:
        async with pool.acquire() as other:
            await _book(other, sport, "poverty", {"municipality": 500}, now)

    async with pool.acquire() as conn:
        report = await monthly_report(_BookingMeanwhile(conn, book_another), POLICY, month)  # type: ignore[arg-type]
    per_payer, per_provider = _totals(report)
    consumed = sum(b["consumed_cents"] for b in report["budget_lines"])
    # One moment's figures: all 1000 (the claim booked meanwhile is next report's), never
    # a per-payer total that disagrees with the per-provider one and the budget lines.
    assert per_payer == per_provider == consumed == 1000
