"""The refund policy: what a check-in is worth, loaded from a TOML file and validated.

Pure data and rules, no I/O beyond reading the file once at start.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.checkins import ActivityCategory


class PolicyVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date
    discount_basis_points: dict[str, int] = Field(description="per target group, 10000 = 100 %")
    cap_per_checkin_cents: int = Field(gt=0)
    yearly_budget_cents: int = Field(gt=0)
    once_per_activity_per_day: bool = True
    eligible_categories: frozenset[ActivityCategory]
    checkin_window_days: int = Field(default=30, ge=1, le=366)
    future_tolerance_seconds: int = Field(default=300, ge=0, le=86_400)

    @model_validator(mode="after")
    def _percentages(self) -> PolicyVersion:
        for group, bp in self.discount_basis_points.items():
            if not 0 <= bp <= 10_000:
                raise ValueError(f"discount for {group} must be between 0 and 10000 basis points")
        return self


class RefundPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    municipality: str
    budget_year: str = Field(default="calendar", pattern=r"^(calendar|program)$")
    program_year_start: str = Field(default="01-01", pattern=r"^\d{2}-\d{2}$")
    versions: tuple[PolicyVersion, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> RefundPolicy:
        days = [v.effective_from for v in self.versions]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("policy versions must have distinct, increasing effective_from dates")
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


def load_policy(path: Path) -> RefundPolicy:
    with path.open("rb") as handle:
        return RefundPolicy.model_validate(tomllib.load(handle))
