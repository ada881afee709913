"""The refund policy: what a check-in is worth and who bears the cost, loaded from a TOML
file per municipality and validated at start.

Pure data and rules, no I/O beyond reading the file once at start.
"""

from __future__ import annotations

import functools
import tomllib
from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.checkins import ActivityCategory

MUNICIPALITY = "municipality"


class LimitScope(StrEnum):
    """What a frequency limit counts: check-ins of one activity, one provider, or any."""

    ACTIVITY = "activity"
    PROVIDER = "provider"
    CATEGORY = "category"
    ANY = "any"


class LimitPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO week, Monday to Sunday
    MONTH = "month"


class FrequencyLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per: LimitScope
    period: LimitPeriod
    max_checkins: int = Field(ge=1)


class ShareBasis(StrEnum):
    FIXED = "fixed"  # a fixed amount per claim (at most what is left)
    PERCENT_OF_TOTAL = "percent_of_total"
    PERCENT_OF_REMAINDER = "percent_of_remainder"  # of what the earlier shares left


class AppliesTo(StrEnum):
    ALL = "all"
    RESIDENTS = "residents"
    NON_RESIDENTS = "non_residents"


class CostShare(BaseModel):
    """One line of the distribution key. The municipality bears whatever the lines leave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payer: str = Field(
        pattern=r"^(provider|government:[a-z0-9-]{1,40})$",
        description="`provider` (the activity's provider) or `government:<name>`",
    )
    basis: ShareBasis
    amount_cents: int = Field(default=0, ge=0)
    basis_points: int = Field(default=0, ge=0, le=10_000)
    applies_to: AppliesTo = AppliesTo.ALL

    @model_validator(mode="after")
    def _one_measure(self) -> CostShare:
        if (self.basis is ShareBasis.FIXED) != (self.amount_cents > 0):
            raise ValueError("a fixed share needs amount_cents > 0, a percentage share none")
        if self.basis is not ShareBasis.FIXED and self.basis_points == 0:
            raise ValueError("a percentage share needs basis_points > 0")
        return self

    def applies(self, resident: bool) -> bool:
        return (
            self.applies_to is AppliesTo.ALL
            or (self.applies_to is AppliesTo.RESIDENTS and resident)
            or (self.applies_to is AppliesTo.NON_RESIDENTS and not resident)
        )


class PolicyVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date
    discount_basis_points: dict[str, int] = Field(description="per target group, 10000 = 100 %")
    cap_per_checkin_cents: int = Field(gt=0)
    yearly_budget_cents: int = Field(gt=0)
    # Kept for old policy files: the same as one limit per activity per day. Left out, it
    # holds unless `frequency_limits` says how often per activity per day itself.
    once_per_activity_per_day: bool | None = None
    frequency_limits: tuple[FrequencyLimit, ...] = ()
    eligible_categories: frozenset[ActivityCategory]
    checkin_window_days: int = Field(default=30, ge=1, le=366)
    future_tolerance_seconds: int = Field(default=300, ge=0, le=86_400)
    distribution: tuple[CostShare, ...] = ()
    # What each budget line (target group) may spend in a budget year: for the reports.
    budget_lines_cents: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _percentages(self) -> PolicyVersion:
        for group, bp in self.discount_basis_points.items():
            if not 0 <= bp <= 10_000:
                raise ValueError(f"discount for {group} must be between 0 and 10000 basis points")
        for line, cents in self.budget_lines_cents.items():
            if cents <= 0:
                raise ValueError(f"budget line {line} must be positive")
        looser = [
            limit.max_checkins for limit in self._per_activity_per_day if limit.max_checkins > 1
        ]
        if self.once_per_activity_per_day and looser:
            # Both in force, the stricter would silently win.
            raise ValueError(
                f"once_per_activity_per_day = true contradicts the frequency limit of"
                f" {looser[0]} per activity per day; leave it out"
            )
        return self

    @property
    def _per_activity_per_day(self) -> list[FrequencyLimit]:
        return [
            limit
            for limit in self.frequency_limits
            if limit.per is LimitScope.ACTIVITY and limit.period is LimitPeriod.DAY
        ]

    @functools.cached_property
    def limits(self) -> tuple[FrequencyLimit, ...]:
        """Every frequency limit in force, the legacy flag included."""
        legacy = FrequencyLimit(per=LimitScope.ACTIVITY, period=LimitPeriod.DAY, max_checkins=1)
        wanted = (
            not self._per_activity_per_day
            if self.once_per_activity_per_day is None
            else self.once_per_activity_per_day
        )
        if wanted and legacy not in self.frequency_limits:
            return (legacy, *self.frequency_limits)
        return self.frequency_limits


class RefundPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    municipality: str
    budget_year: str = Field(default="calendar", pattern=r"^(calendar|program)$")
    program_year_start: str = Field(default="01-01", pattern=r"^[0-9]{2}-[0-9]{2}$")
    versions: tuple[PolicyVersion, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> RefundPolicy:
        days = [v.effective_from for v in self.versions]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("policy versions must have distinct, increasing effective_from dates")
        month, dom = (int(x) for x in self.program_year_start.split("-"))
        date(2001, month, dom)  # raises for 02-30 and the like
        return self

    def version_on(self, day: date) -> PolicyVersion | None:
        """The version in force on `day`, or None before the first version."""
        current = None
        for version in self.versions:
            if version.effective_from <= day:
                current = version
        return current

    def budget_period(self, day: date) -> int:
        """The budget year a day belongs to (identified by the year it starts in)."""
        if self.budget_year == "calendar":
            return day.year
        month, dom = (int(x) for x in self.program_year_start.split("-"))
        return day.year if (day.month, day.day) >= (month, dom) else day.year - 1

    def period_bounds(self, period: int) -> tuple[date, date]:
        """First and last day (inclusive) of a budget year."""
        month, dom = (int(x) for x in self.program_year_start.split("-"))
        if self.budget_year == "calendar":
            month, dom = 1, 1
        start = date(period, month, dom)
        end = date(period + 1, month, dom)
        return start, date.fromordinal(end.toordinal() - 1)


def load_policy(path: Path) -> RefundPolicy:
    with path.open("rb") as handle:
        return RefundPolicy.model_validate(tomllib.load(handle))
