"""When claims tells finance that a budget line nears its limit: the threshold rule (pure,
exact in cents, reversals included), the budget year a booking counts in, the budget that
applies, and a background job that outlives its failures."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, cast

import asyncpg
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from services.claims.budget_watch import (
    BudgetWatch,
    budget_of,
    cost_per_budget_year,
    thresholds_crossed,
)
from services.claims.policy import RefundPolicy
from services.claims.settings import ClaimsSettings

THRESHOLDS = (80, 100)
cents = st.integers(min_value=0, max_value=10**9)
signed_cents = st.integers(min_value=-(10**9), max_value=10**9)
budgets = st.integers(min_value=1, max_value=10**9)


def _reached(consumed: int, budget: int) -> set[int]:
    return {t for t in THRESHOLDS if 100 * consumed >= t * budget}


@given(budget=budgets, steps=st.lists(cents, max_size=30))
def test_each_threshold_is_crossed_exactly_once_as_consumption_grows(
    budget: int, steps: list[int]
) -> None:
    consumed, crossed = 0, []
    for step in steps:
        crossed += thresholds_crossed(consumed, consumed + step, budget, THRESHOLDS)
        consumed += step
    assert sorted(crossed) == sorted(_reached(consumed, budget))


@given(budget=budgets, steps=st.lists(signed_cents, max_size=30))
def test_with_reversals_what_is_crossed_is_what_was_ever_reached(
    budget: int, steps: list[int]
) -> None:
    """Reversals drop a line below a threshold and claims lift it over again: the rule
    then says "crossed" again (the alerts table keeps finance from hearing it twice), but
    never names a threshold the consumption did not reach, nor misses one it did."""
    consumed, crossed, ever = 0, set(), set()
    for step in steps:
        now = thresholds_crossed(consumed, consumed + step, budget, THRESHOLDS)
        assert now == sorted(_reached(consumed + step, budget) - _reached(consumed, budget))
        if step <= 0:
            assert now == []
        crossed |= set(now)
        consumed += step
        ever |= _reached(consumed, budget)
    assert crossed == ever


def test_the_boundary_is_exact_in_cents() -> None:
    assert thresholds_crossed(0, 79_999, 100_000, (80,)) == []
    assert thresholds_crossed(79_999, 80_000, 100_000, (80,)) == [80]
    assert thresholds_crossed(0, 200_000, 100_000, (100, 80)) == [80, 100]
    assert thresholds_crossed(0, 80_000, 100_001, (80,)) == []  # 80,000.8 cents
    assert thresholds_crossed(0, 80_001, 100_001, (80,)) == [80]
    assert thresholds_crossed(0, 10, 0, (80,)) == []
    assert thresholds_crossed(90_000, 70_000, 100_000, (80,)) == []


def _policy(budget_year: str = "program") -> RefundPolicy:
    return RefundPolicy.model_validate(
        {
            "municipality": "Proefgemeente",
            "budget_year": budget_year,
            "program_year_start": "09-01",
            "versions": [
                {
                    "effective_from": date(2020, 1, 1),
                    "discount_basis_points": {"poverty": 7500},
                    "cap_per_checkin_cents": 2500,
                    "yearly_budget_cents": 15000,
                    "eligible_categories": ["culture"],
                    "budget_lines_cents": {"poverty": 100_000},
                },
                {
                    "effective_from": date(2026, 9, 1),
                    "discount_basis_points": {"poverty": 7500},
                    "cap_per_checkin_cents": 2500,
                    "yearly_budget_cents": 15000,
                    "eligible_categories": ["culture"],
                    "budget_lines_cents": {"poverty": 150_000, "senior": 20_000},
                },
            ],
        }
    )


def test_bookings_count_in_the_budget_year_of_their_day() -> None:
    per_day = [
        ("poverty", date(2026, 8, 31), 1000),
        ("poverty", date(2026, 9, 1), 500),
        ("poverty", date(2026, 12, 31), 250),
        ("poverty", date(2027, 1, 1), -250),  # a reversal: net cost
        ("senior", date(2026, 9, 2), 300),
        ("senior", date(2026, 9, 3), -300),  # nothing left to add
    ]
    assert cost_per_budget_year(per_day, _policy()) == {
        ("poverty", 2025): 1000,
        ("poverty", 2026): 500,
    }
    assert cost_per_budget_year(per_day, _policy("calendar")) == {
        ("poverty", 2026): 1750,
        ("poverty", 2027): -250,
    }


def test_the_budget_is_the_one_in_force_at_the_years_end_or_today() -> None:
    policy = _policy()
    assert budget_of(policy, "poverty", 2025, today=date(2026, 11, 28)) == 100_000
    assert budget_of(policy, "poverty", 2026, today=date(2026, 11, 28)) == 150_000
    assert budget_of(policy, "senior", 2025, today=date(2026, 11, 28)) is None
    assert budget_of(policy, "poverty", 2019, today=date(2026, 11, 28)) == 100_000


def test_settings_watch_every_minute_at_80_and_100_percent() -> None:
    settings = ClaimsSettings(
        database_url="postgresql://claims@db/claims", api_token_secret=SecretStr("x" * 40)
    )
    assert settings.budget_watch_interval_s == 60
    assert settings.budget_thresholds_percent == (80, 100)


class FailingPool:
    """A pool whose connections fail `failures` times, then stop the job."""

    def __init__(self, failures: int, stop: asyncio.Event) -> None:
        self.failures = failures
        self.stop = stop
        self.calls = 0

    def acquire(self) -> Any:
        self.calls += 1
        if self.calls > self.failures:
            self.stop.set()
        raise ConnectionRefusedError("postgresql://vtp:secret@db")


async def test_a_failing_run_is_logged_and_the_job_runs_again() -> None:
    stop = asyncio.Event()
    pool = FailingPool(2, stop)
    watch = BudgetWatch(cast(asyncpg.Pool, pool), _policy(), 0.01, THRESHOLDS)
    with capture_logs() as logs:
        await asyncio.wait_for(watch.run(stop), 5)
    assert pool.calls == 3
    failed = [e for e in logs if e["event"] == "budget watch failed, tried again next time"]
    assert len(failed) == 3 and failed[0]["error"] == "ConnectionRefusedError"
    assert "secret" not in repr(logs)


async def test_an_interval_of_zero_never_runs() -> None:
    pool = FailingPool(0, asyncio.Event())
    await asyncio.wait_for(
        BudgetWatch(cast(asyncpg.Pool, pool), _policy(), 0, THRESHOLDS).run(asyncio.Event()), 1
    )
    assert pool.calls == 0
