"""Which grant a check-in falls under, and how the decision prices it: a late or early
check-in is judged by the grant of its own day, never by the holder's newest grant."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.claims.decisions import CardAtCheckIn, CheckInFacts, ProviderView, decide
from services.claims.eligibility import Grant, grant_on
from services.claims.policy import RefundPolicy
from shared.events.cards import CardStatus, ProviderMode
from shared.events.checkins import ActivityCategory
from shared.events.claims import RejectionReason

POVERTY_2024 = Grant("poverty", date(2024, 1, 1), date(2024, 12, 31), 0)
SENIOR_2025 = Grant("senior", date(2025, 1, 1), date(2025, 12, 31), 0)
POLICY = RefundPolicy.model_validate(
    {
        "municipality": "Proefgemeente",
        "versions": [
            {
                "effective_from": date(2020, 1, 1),
                "discount_basis_points": {"poverty": 7500, "senior": 2500},
                "cap_per_checkin_cents": 5000,
                "yearly_budget_cents": 50000,
                "eligible_categories": ["culture"],
            }
        ],
    }
)


def test_an_early_renewal_leaves_the_days_before_it_to_the_old_grant() -> None:
    grants = [SENIOR_2025, POVERTY_2024]  # the renewal was granted on 15 December
    assert grant_on(grants, date(2024, 12, 20)) == POVERTY_2024
    assert grant_on(grants, date(2025, 1, 3)) == SENIOR_2025
    assert grant_on(grants, date(2023, 12, 31)) is None
    assert grant_on(grants, date(2026, 1, 1)) is None


def test_grace_days_count_but_a_started_renewal_takes_over() -> None:
    old = Grant("poverty", date(2024, 1, 1), date(2024, 12, 31), 30)
    renewal = Grant("senior", date(2025, 1, 10), date(2025, 12, 31), 0)
    assert grant_on([old, renewal], date(2025, 1, 5)) == old  # in its grace days
    assert grant_on([old, renewal], date(2025, 1, 30)) == renewal  # its grace overlaps
    assert grant_on([old, renewal], date(2025, 1, 31)) == renewal
    assert grant_on([old], date(2025, 1, 30)) == old  # the last day of grace is included
    assert grant_on([old], date(2025, 1, 31)) is None


def test_of_two_grants_in_their_own_period_the_later_start_wins() -> None:
    poverty = Grant("poverty", date(2024, 1, 1), date(2025, 12, 31), 0)
    senior = Grant("senior", date(2024, 6, 1), date(2024, 12, 31), 0)
    assert grant_on([poverty, senior], date(2024, 5, 31)) == poverty
    assert grant_on([poverty, senior], date(2024, 6, 1)) == senior
    assert grant_on([senior, poverty], date(2025, 1, 1)) == poverty


days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
grants = st.builds(
    lambda start, length, grace, group: Grant(group, start, start + timedelta(days=length), grace),
    days,
    st.integers(0, 800),
    st.integers(0, 60),
    st.sampled_from(["poverty", "senior", "disability"]),
)


@st.composite
def disjoint_grants(draw: st.DrawFn) -> list[Grant]:
    """Grants one after the other, grace included, with gaps of zero or more days."""
    start = draw(days)
    out = []
    for _ in range(draw(st.integers(0, 5))):
        length, grace, gap = (
            draw(st.integers(0, 400)),
            draw(st.integers(0, 60)),
            draw(st.integers(1, 90)),
        )
        group = draw(st.sampled_from(["poverty", "senior", "disability"]))
        out.append(Grant(group, start, start + timedelta(days=length), grace))
        start += timedelta(days=length + grace + gap)
    return out


@given(held=disjoint_grants(), day=days)
def test_a_day_inside_one_grant_takes_that_grant_and_outside_all_none(
    held: list[Grant], day: date
) -> None:
    inside = [
        g for g in held if g.eligible_from <= day <= g.eligible_until + timedelta(g.grace_days)
    ]
    assert len(inside) <= 1
    assert grant_on(held, day) == (inside[0] if inside else None)


@given(held=st.lists(grants, max_size=6), day=days, data=st.data())
def test_the_choice_covers_the_day_and_ignores_the_order(
    held: list[Grant], day: date, data: st.DataObject
) -> None:
    chosen = grant_on(held, day)
    assert (chosen is None) == (not any(g.covers(day) for g in held))
    if chosen is not None:
        assert chosen in held and chosen.covers(day)
    assert grant_on(data.draw(st.permutations(held)), day) == chosen


def _card(grant: Grant | None) -> CardAtCheckIn:
    return CardAtCheckIn(uuid.uuid4(), uuid.uuid4(), grant, CardStatus.ACTIVE)


def _decide(grant: Grant | None, at: datetime) -> tuple[bool, int, RejectionReason | None]:
    decision = decide(
        POLICY,
        CheckInFacts(at, ActivityCategory.CULTURE, 2000),
        _card(grant),
        ProviderView(partner=True, mode=ProviderMode.REFUND),
        used_cents=0,
        limit_reached=None,
    )
    return decision.approved, decision.amount_cents, decision.reason


def test_the_decision_prices_with_the_grant_of_the_day() -> None:
    december = datetime(2024, 12, 20, 18, 0, tzinfo=UTC)
    assert _decide(POVERTY_2024, december) == (True, 1500, None)
    assert _decide(SENIOR_2025, datetime(2025, 1, 3, 18, 0, tzinfo=UTC)) == (True, 500, None)
    # No grant that day, or one that does not cover it: not eligible.
    assert _decide(None, december) == (False, 0, RejectionReason.NOT_ELIGIBLE)
    assert _decide(SENIOR_2025, december) == (False, 0, RejectionReason.NOT_ELIGIBLE)
    # 31 December 23:30 UTC is already 1 January in Brussels: the renewal's day.
    new_year = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    assert _decide(POVERTY_2024, new_year) == (False, 0, RejectionReason.NOT_ELIGIBLE)
    assert _decide(SENIOR_2025, new_year) == (True, 500, None)


# Days of these times and near the end of the calendar, where an end date plus grace days
# does not exist.
near_the_end = st.integers(0, 1200).map(lambda back: date.max - timedelta(days=back))
any_day = days | near_the_end


@given(start=any_day, length=st.integers(0, 800), grace=st.integers(0, 365), day=any_day)
def test_a_grant_ending_at_the_end_of_the_calendar_covers_without_overflow(
    start: date, length: int, grace: int, day: date
) -> None:
    until = start + timedelta(days=min(length, (date.max - start).days))
    grant = Grant("poverty", start, until, grace)
    # What "up to the end date plus the grace days" means, counted in ordinals (no overflow).
    assert grant.covers(day) == (start.toordinal() <= day.toordinal() <= until.toordinal() + grace)
    assert grant_on([grant], day) == (grant if grant.covers(day) else None)


def test_a_grant_until_9999_prices_a_checkin() -> None:
    forever = Grant("poverty", date(2020, 1, 1), date(9999, 12, 31), 30)
    assert _decide(forever, datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) == (True, 1500, None)


def test_a_target_group_without_a_discount_is_told_apart_from_a_price_with_none() -> None:
    """A group the version in force gives no discount (left out, or 0 basis points) was
    refused as "no discount applies to this price": read as if the activity were free."""
    policy = RefundPolicy.model_validate(
        {
            "municipality": "Proefgemeente",
            "versions": [
                {
                    "effective_from": date(2020, 1, 1),
                    "discount_basis_points": {"poverty": 7500, "senior": 2500},
                    "cap_per_checkin_cents": 5000,
                    "yearly_budget_cents": 50000,
                    "eligible_categories": ["culture"],
                },
                {
                    "effective_from": date(2025, 1, 1),
                    "discount_basis_points": {"poverty": 7500, "disability": 0},
                    "cap_per_checkin_cents": 5000,
                    "yearly_budget_cents": 50000,
                    "eligible_categories": ["culture"],
                },
            ],
        }
    )
    day = datetime(2025, 3, 4, 18, 0, tzinfo=UTC)

    def rejected(group: str, price_cents: int) -> tuple[RejectionReason | None, str]:
        decision = decide(
            policy,
            CheckInFacts(day, ActivityCategory.CULTURE, price_cents),
            _card(Grant(group, date(2024, 1, 1), date(2025, 12, 31), 0)),
            ProviderView(partner=True, mode=ProviderMode.REFUND),
            used_cents=0,
            limit_reached=None,
        )
        assert not decision.approved
        return decision.reason, decision.detail

    for group in ("senior", "disability"):  # dropped from the version; kept at 0 %
        assert rejected(group, 2000) == (
            RejectionReason.NOTHING_TO_REFUND,
            f"target group {group} has no discount in the refund policy version in force"
            " that day (effective from 2025-01-01)",
        )
    # A group with a discount and a free activity: the price is the reason.
    assert rejected("poverty", 0) == (
        RejectionReason.NOTHING_TO_REFUND,
        "a price of 0 cents leaves no discount to refund",
    )
