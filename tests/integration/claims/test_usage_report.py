"""The council's usage report on a real PostgreSQL: take-up per target group and per
sub-municipality, check-ins per provider, category and month; only standing check-ins; the
Belgian calendar; and no cell that counts fewer than five card holders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from services.claims.usage import period_of, usage_report
from shared.db import DbConnection
from shared.ids import uuid7
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    await scenario.prepare(pool)
    try:
        yield pool
    finally:
        await pool.close()


async def _holder(
    conn: DbConnection,
    group: str,
    area: str | None,
    eligible: tuple[date, date] = (date(2026, 1, 1), date(2026, 12, 31)),
) -> uuid.UUID:
    holder_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO cards (card_id, card_number, holder_id, target_group, eligible_from,"
        " eligible_until, grace_days, resident, sub_municipality, issued_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 0, true, $7, $8)",
        uuid.uuid4(),
        uuid.uuid4().hex[:13],
        holder_id,
        group,
        *eligible,
        area,
        datetime(2025, 12, 1, tzinfo=UTC),
    )
    await conn.execute(
        "INSERT INTO holder_grants VALUES ($1, $2, $3, $4, 0)", holder_id, group, *eligible
    )
    return holder_id


async def _checkin(
    conn: DbConnection,
    holder_id: uuid.UUID,
    provider_id: uuid.UUID,
    group: str,
    at: datetime,
    cents: int = 500,
    *,
    outcome: str = "approved",
    reversed_at: datetime | None = None,
    category: str = "sport",
) -> None:
    await conn.execute(
        "INSERT INTO claims (claim_id, checkin_id, event_id, correlation_id, holder_id,"
        " provider_id, device_id, activity_id, category, target_group, price_cents,"
        " amount_cents, outcome, reason, payee_kind, occurred_at, decided_at, reversed_at)"
        " VALUES ($1, $2, $3, 'c', $4, $5, $6, 'zwemmen', $7, $8, 1000, $9, $10, $11,"
        " 'card_holder', $12, $12, $13)",
        uuid7(),
        uuid.uuid4(),
        uuid.uuid4(),
        holder_id,
        provider_id,
        uuid.uuid4(),
        category,
        group,
        0 if outcome == "rejected" else cents,
        outcome,
        "over_budget" if outcome == "rejected" else None,
        at,
        reversed_at,
    )


MARCH = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


async def test_take_up_and_use_per_group_area_provider_and_month(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pool_id = await scenario.provider_row(conn, "Zwembad De Wiek")
        museum = await scenario.provider_row(conn, "Museum Zwaneberg")
        poverty = [await _holder(conn, "poverty", "Heist-Centrum") for _ in range(10)]
        seniors = [await _holder(conn, "senior", "Hallaar") for _ in range(6)]
        for holder in poverty[:6]:
            await _checkin(conn, holder, pool_id, "poverty", MARCH)
        await _checkin(conn, poverty[0], museum, "poverty", MARCH, 700, category="culture")
        for holder in seniors[:5]:
            await _checkin(conn, holder, pool_id, "senior", MARCH, 300)
        # What does not count: a rejection, a reversed check-in, another month (April in
        # Brussels though March 31st in UTC), another year.
        await _checkin(conn, poverty[7], pool_id, "poverty", MARCH, outcome="rejected")
        await _checkin(conn, poverty[8], pool_id, "poverty", MARCH, reversed_at=MARCH)
        await _checkin(
            conn, poverty[9], pool_id, "poverty", datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
        )
        await _checkin(conn, poverty[9], pool_id, "poverty", datetime(2025, 3, 14, tzinfo=UTC))

        report = await usage_report(conn, period_of("2026-03"))

    assert (report["first_day"], report["last_day"]) == ("2026-03-01", "2026-03-31")
    assert report["totals"] == {
        "eligible_holders": 16,
        "active_holders": 11,
        "take_up_basis_points": 6875,
        "checkins": 12,
        "discount_cents": 6 * 500 + 700 + 5 * 300,
    }
    assert report["per_target_group"] == [
        {
            "target_group": "poverty",
            "eligible_holders": 10,
            "active_holders": 6,
            "take_up_basis_points": 6000,
            "checkins": 7,
            "discount_cents": 3700,
        },
        {
            "target_group": "senior",
            "eligible_holders": 6,
            "active_holders": 5,
            "take_up_basis_points": 8333,
            "checkins": 5,
            "discount_cents": 1500,
        },
    ]
    assert [
        (r["sub_municipality"], r["active_holders"]) for r in report["per_sub_municipality"]
    ] == [
        ("Hallaar", 5),
        ("Heist-Centrum", 6),
    ]
    assert report["per_provider"][0] == {
        "provider_id": str(pool_id),
        "provider": "Zwembad De Wiek",
        "sub_municipality": "Heist-Centrum",
        "checkins": 11,
        "active_holders": 11,
        "discount_cents": 4500,
    }
    # One holder at the museum: the provider's figures stand, the holder count does not.
    assert report["per_provider"][1]["checkins"] == 1
    assert report["per_provider"][1]["active_holders"] is None
    assert [(r["category"], r["checkins"]) for r in report["per_category"]] == [
        ("culture", 1),
        ("sport", 11),
    ]
    assert report["per_month"] == [
        {"month": "2026-03", "checkins": 12, "active_holders": 11, "discount_cents": 5200}
    ]

    async with pool.acquire() as conn:
        year = await usage_report(conn, period_of("2026"))
    assert [(r["month"], r["checkins"]) for r in year["per_month"]] == [
        ("2026-03", 12),
        ("2026-04", 1),
    ]


async def test_a_few_holders_are_never_shown_nor_what_they_did(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        provider = await scenario.provider_row(conn, "Jeugdhuis")
        many = [await _holder(conn, "poverty", "Heist-Centrum") for _ in range(8)]
        few = [await _holder(conn, "disability", "Itegem") for _ in range(3)]
        unknown_area = await _holder(conn, "poverty", None)
        for holder in many[:5] + few[:2] + [unknown_area]:
            await _checkin(
                conn, holder, provider, "poverty" if holder not in few else "disability", MARCH
            )
        report = await usage_report(conn, period_of("2026-03"))

    rows = {r["target_group"]: r for r in report["per_target_group"]}
    assert rows["disability"] == {
        "target_group": "disability",
        "eligible_holders": None,
        "active_holders": None,
        "take_up_basis_points": None,
        "checkins": None,
        "discount_cents": None,
    }
    # Shown, poverty's figures would give disability's by subtraction from the totals.
    assert rows["poverty"]["active_holders"] is None and rows["poverty"]["checkins"] is None
    assert report["totals"]["active_holders"] == 8
    areas = {r["sub_municipality"]: r for r in report["per_sub_municipality"]}
    assert set(areas) == {"Heist-Centrum", "Itegem", "(onbekend)"}
    assert areas["Itegem"]["active_holders"] is None and areas["Itegem"]["checkins"] is None
    assert areas["(onbekend)"]["eligible_holders"] is None
    assert areas["Heist-Centrum"]["take_up_basis_points"] == 5 * 10_000 // 8


async def test_holders_whose_grant_does_not_reach_the_period_are_not_eligible(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        for _ in range(5):
            await _holder(conn, "senior", "Hallaar")
        for _ in range(5):
            await _holder(conn, "senior", "Hallaar", (date(2026, 4, 1), date(2026, 12, 31)))
        for _ in range(5):
            await _holder(conn, "senior", "Hallaar", (date(2025, 1, 1), date(2026, 2, 28)))
        march = await usage_report(conn, period_of("2026-03"))
        year = await usage_report(conn, period_of("2026"))
    assert march["totals"]["eligible_holders"] == 5
    assert march["totals"]["active_holders"] == 0
    assert march["totals"]["take_up_basis_points"] == 0
    assert year["totals"]["eligible_holders"] == 15


@pytest.mark.parametrize("text", ["2026-13", "26", "2026-3", "1999", "2026-03-01", ""])
def test_a_period_is_a_year_or_a_month(text: str) -> None:
    with pytest.raises(ValueError, match="expected a year"):
        period_of(text)
