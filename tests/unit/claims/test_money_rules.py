"""The money rules of claims without a database: the distribution key, policy validation,
frequency windows."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.claims.distribution import split_cost
from services.claims.frequency import Visit, limit_reached, period_of
from services.claims.policy import CostShare, FrequencyLimit, LimitPeriod, LimitScope, RefundPolicy
from shared.events.checkins import ActivityCategory

shares = (
    st.builds(
        CostShare,
        payer=st.sampled_from(["provider", "government:vlaanderen", "government:provincie"]),
        basis=st.just("percent_of_total"),
        basis_points=st.integers(1, 10_000),
        applies_to=st.sampled_from(["all", "residents", "non_residents"]),
    )
    | st.builds(
        CostShare,
        payer=st.sampled_from(["provider", "government:vlaanderen"]),
        basis=st.just("percent_of_remainder"),
        basis_points=st.integers(1, 10_000),
    )
    | st.builds(
        CostShare,
        payer=st.sampled_from(["provider", "government:vlaanderen"]),
        basis=st.just("fixed"),
        amount_cents=st.integers(1, 5_000),
    )
)


@given(total=st.integers(0, 1_000_000), key=st.lists(shares, max_size=5), resident=st.booleans())
def test_shares_are_positive_and_add_up_to_the_claim(
    total: int, key: list[CostShare], resident: bool
) -> None:
    split = split_cost(total, key, resident=resident)
    assert sum(s.amount_cents for s in split) == total
    assert all(s.amount_cents > 0 for s in split)
    assert len({s.payer for s in split}) == len(split)
    if key == [] and total > 0:
        assert [(s.payer, s.amount_cents) for s in split] == [("municipality", total)]


def test_distribution_key_examples() -> None:
    key = [
        CostShare(payer="provider", basis="fixed", amount_cents=200),
        CostShare(payer="government:vlaanderen", basis="percent_of_remainder", basis_points=5000),
        CostShare(
            payer="government:provincie",
            basis="percent_of_total",
            basis_points=1000,
            applies_to="non_residents",
        ),
    ]
    assert [(s.payer, s.amount_cents) for s in split_cost(1000, key, resident=True)] == [
        ("provider", 200),
        ("government:vlaanderen", 400),
        ("municipality", 400),
    ]
    assert [(s.payer, s.amount_cents) for s in split_cost(1000, key, resident=False)] == [
        ("provider", 200),
        ("government:vlaanderen", 400),
        ("government:provincie", 100),
        ("municipality", 300),
    ]


@pytest.mark.parametrize(
    "share",
    [
        {"payer": "provider", "basis": "fixed"},
        {"payer": "provider", "basis": "percent_of_total"},
        {"payer": "someone", "basis": "fixed", "amount_cents": 5},
        {"payer": "provider", "basis": "percent_of_total", "basis_points": 10_001},
    ],
)
def test_a_bad_distribution_line_is_refused_at_start(share: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CostShare.model_validate(share)


def test_policy_refuses_unordered_versions_and_impossible_program_years() -> None:
    version = {
        "discount_basis_points": {"poverty": 7500},
        "cap_per_checkin_cents": 100,
        "yearly_budget_cents": 1000,
        "eligible_categories": ["culture"],
    }
    with pytest.raises(ValidationError):
        RefundPolicy.model_validate(
            {
                "municipality": "x",
                "versions": [
                    {**version, "effective_from": "2026-01-01"},
                    {**version, "effective_from": "2025-01-01"},
                ],
            }
        )
    with pytest.raises(ValidationError):
        RefundPolicy.model_validate(
            {
                "municipality": "x",
                "budget_year": "program",
                "program_year_start": "02-30",
                "versions": [{**version, "effective_from": "2025-01-01"}],
            }
        )
    policy = RefundPolicy.model_validate(
        {
            "municipality": "x",
            "budget_year": "program",
            "program_year_start": "09-01",
            "versions": [{**version, "effective_from": "2025-01-01"}],
        }
    )
    assert policy.budget_period(date(2026, 8, 31)) == 2025
    assert policy.period_bounds(2025) == (date(2025, 9, 1), date(2026, 8, 31))
    assert policy.versions[0].limits[0].per is LimitScope.ACTIVITY  # the legacy flag


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    period=st.sampled_from(list(LimitPeriod)),
)
def test_a_limit_window_contains_its_day(day: date, period: LimitPeriod) -> None:
    start, end = period_of(period, day)
    assert start <= day <= end
    assert period_of(period, start) == period_of(period, end) == (start, end)


def test_weekly_limit_per_provider() -> None:
    provider, other = uuid.uuid4(), uuid.uuid4()
    limit = FrequencyLimit(per=LimitScope.PROVIDER, period=LimitPeriod.WEEK, max_checkins=2)

    def visit(day: int, who: uuid.UUID) -> Visit:
        return Visit(date(2026, 3, day), f"a{day}", who, ActivityCategory.SPORT)

    earlier = [visit(2, provider), visit(3, other), visit(8, provider)]  # Mon 2 .. Sun 8 March
    assert limit_reached([limit], earlier, visit(5, provider)) == limit
    assert limit_reached([limit], earlier, visit(5, other)) is None
    assert limit_reached([limit], earlier, visit(9, provider)) is None  # a new week


def test_once_per_activity_per_day_is_per_providers_activity() -> None:
    """Activity ids are each provider's own (`activities` is keyed by provider and id): two
    providers' "zwemmen" are two activities."""
    provider, other = uuid.uuid4(), uuid.uuid4()
    limit = FrequencyLimit(per=LimitScope.ACTIVITY, period=LimitPeriod.DAY, max_checkins=1)
    today = date(2026, 3, 3)
    earlier = [Visit(today, "zwemmen", provider, ActivityCategory.SPORT)]
    assert limit_reached(
        [limit], earlier, Visit(today, "zwemmen", provider, ActivityCategory.SPORT)
    )
    assert (
        limit_reached([limit], earlier, Visit(today, "zwemmen", other, ActivityCategory.SPORT))
        is None
    )
    assert (
        limit_reached([limit], earlier, Visit(today, "fitness", provider, ActivityCategory.SPORT))
        is None
    )
    tomorrow = date(2026, 3, 4)
    assert (
        limit_reached(
            [limit], earlier, Visit(tomorrow, "zwemmen", provider, ActivityCategory.SPORT)
        )
        is None
    )


def test_a_looser_limit_per_activity_per_day_is_not_overruled_by_the_default() -> None:
    version = {
        "effective_from": "2025-01-01",
        "discount_basis_points": {"poverty": 7500},
        "cap_per_checkin_cents": 100,
        "yearly_budget_cents": 1000,
        "eligible_categories": ["sport"],
    }
    twice = {"per": "activity", "period": "day", "max_checkins": 2}

    def limits(**extra: object) -> list[int]:
        policy = RefundPolicy.model_validate(
            {"municipality": "x", "versions": [{**version, **extra}]}
        )
        return [
            limit.max_checkins
            for limit in policy.versions[0].limits
            if limit.per is LimitScope.ACTIVITY and limit.period is LimitPeriod.DAY
        ]

    assert limits() == [1]  # nothing said: once per activity per day
    assert limits(frequency_limits=[twice]) == [2]  # said otherwise: as said
    assert limits(once_per_activity_per_day=False) == []
    with pytest.raises(ValidationError, match="contradicts the frequency limit of 2"):
        limits(once_per_activity_per_day=True, frequency_limits=[twice])
