"""Pricing a check-in: pure rules, no I/O. Given what was true when the check-in happened,
the decision is approved (possibly capped) or rejected with a reason."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.claims.eligibility import Grant
from services.claims.policy import (
    FrequencyLimit,
    LimitPeriod,
    LimitScope,
    RefundPolicy,
)
from shared.events.cards import CardStatus, ProviderMode
from shared.events.checkins import ActivityCategory
from shared.events.claims import RejectionReason
from shared.localtime import business_day
from shared.money import percent_of

_STATUS_REASONS = {
    CardStatus.BLOCKED: RejectionReason.CARD_BLOCKED,
    CardStatus.EXPIRED: RejectionReason.CARD_EXPIRED,
    CardStatus.REVOKED: RejectionReason.CARD_REVOKED,
    CardStatus.REPLACED: RejectionReason.CARD_REPLACED,
}


@dataclass(frozen=True)
class CardAtCheckIn:
    """The card as it was at the moment of the check-in; `grant` is its holder's grant in
    force that day (None: not eligible that day)."""

    card_id: uuid.UUID
    holder_id: uuid.UUID
    grant: Grant | None
    status: CardStatus
    resident: bool = True

    @property
    def target_group(self) -> str | None:
        return self.grant.target_group if self.grant else None


@dataclass(frozen=True)
class ProviderView:
    partner: bool
    mode: ProviderMode


@dataclass(frozen=True)
class CheckInFacts:
    occurred_at: datetime
    category: ActivityCategory
    price_cents: int


@dataclass(frozen=True)
class Decision:
    approved: bool
    amount_cents: int = 0
    capped: bool = False
    reason: RejectionReason | None = None
    detail: str = ""

    @staticmethod
    def reject(reason: RejectionReason, detail: str) -> Decision:
        return Decision(approved=False, reason=reason, detail=detail)


def check_timing(
    policy: RefundPolicy, occurred_at: datetime, received_at: datetime
) -> Decision | None:
    """A rejection when the check-in is from the future or older than the window."""
    version = policy.version_on(business_day(occurred_at)) or policy.versions[0]
    if occurred_at > received_at + timedelta(seconds=version.future_tolerance_seconds):
        return Decision.reject(
            RejectionReason.IN_THE_FUTURE,
            f"occurred_at is more than {version.future_tolerance_seconds} s ahead of the server clock",
        )
    if occurred_at < received_at - timedelta(days=version.checkin_window_days):
        return Decision.reject(
            RejectionReason.OUT_OF_WINDOW,
            f"check-in is older than the window of {version.checkin_window_days} days",
        )
    return None


def decide(
    policy: RefundPolicy,
    facts: CheckInFacts,
    card: CardAtCheckIn | None,
    provider: ProviderView | None,
    *,
    used_cents: int,
    limit_reached: FrequencyLimit | None,
) -> Decision:
    """Price one authenticated, timely check-in. `used_cents` is the holder's budget used in
    the budget period of the check-in; `limit_reached` the frequency limit (of the version in
    force that day) that this check-in would break, if any."""
    day = business_day(facts.occurred_at)
    if card is None:
        return Decision.reject(RejectionReason.UNKNOWN_CARD, "no card with this number")
    if card.status != CardStatus.ACTIVE:
        return Decision.reject(
            _STATUS_REASONS[card.status], f"card was {card.status.value} at the time"
        )
    if card.grant is None or not card.grant.covers(day):
        return Decision.reject(
            RejectionReason.NOT_ELIGIBLE, "no eligibility on the day of the check-in"
        )
    if provider is None or not provider.partner:
        return Decision.reject(RejectionReason.PROVIDER_NOT_PARTNER, "provider is not a partner")
    version = policy.version_on(day)
    if version is None:
        return Decision.reject(RejectionReason.NOT_ELIGIBLE, "no refund policy in force that day")
    if facts.category not in version.eligible_categories:
        return Decision.reject(
            RejectionReason.CATEGORY_NOT_ELIGIBLE,
            f"category {facts.category.value} is not eligible",
        )
    if limit_reached is not None:
        return _frequency_rejection(limit_reached)
    group = card.grant.target_group
    basis_points = version.discount_basis_points.get(group, 0)
    if basis_points == 0:
        # Said as such: "no discount applies to this price" read as if the activity was free.
        return Decision.reject(
            RejectionReason.NOTHING_TO_REFUND,
            f"target group {group} has no discount in the refund policy version in force"
            f" that day (effective from {version.effective_from.isoformat()})",
        )
    discount = percent_of(facts.price_cents, basis_points)
    if discount <= 0:
        return Decision.reject(
            RejectionReason.NOTHING_TO_REFUND,
            f"a price of {facts.price_cents} cents leaves no discount to refund",
        )
    remaining = version.yearly_budget_cents - used_cents
    if remaining <= 0:
        return Decision.reject(RejectionReason.BUDGET_EXHAUSTED, "the yearly budget is used up")
    amount = min(discount, version.cap_per_checkin_cents, remaining)
    return Decision(approved=True, amount_cents=amount, capped=amount < discount)


def _frequency_rejection(limit: FrequencyLimit) -> Decision:
    if limit.per is LimitScope.ACTIVITY and limit.period is LimitPeriod.DAY:
        return Decision.reject(
            RejectionReason.ALREADY_TODAY, "this activity was already refunded today"
        )
    return Decision.reject(
        RejectionReason.FREQUENCY_LIMIT,
        f"at most {limit.max_checkins} per {limit.per.value} per {limit.period.value}",
    )
