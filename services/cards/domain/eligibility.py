"""Eligibility periods: when a grant lets a card be used, extensions, and what the daily job
expires or announces. Dates are local calendar days; a grace period follows the end date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from services.cards.domain.errors import Conflict, InvalidField

MAX_PERIOD_DAYS = 5 * 366
# How far ahead a grant, grace included, may reach. Keeps every date derived from a grant
# (end + grace, announcement windows) far from the calendar's end in year 9999.
MAX_YEARS_AHEAD = 10
MAX_DAYS_AHEAD = MAX_YEARS_AHEAD * 366
# How far back a grant may start: a running grant of the longest length, from a list that
# is imported a year late. A start in year 1 is a typing error, not a decision.
MAX_YEARS_BACK = 6
MAX_DAYS_BACK = MAX_YEARS_BACK * 366


@dataclass(frozen=True)
class Period:
    eligible_from: date
    eligible_until: date
    grace_days: int = 0

    @property
    def last_valid_day(self) -> date:
        return self.eligible_until + timedelta(days=self.grace_days)


def check_period(
    eligible_from: date, eligible_until: date, today: date, grace_days: int = 0
) -> None:
    if eligible_until < eligible_from:
        raise InvalidField(
            "eligible_until",
            f"{eligible_until.isoformat()} is before eligible_from {eligible_from.isoformat()}",
        )
    if eligible_from < today - timedelta(days=MAX_DAYS_BACK):
        raise InvalidField(
            "eligible_from",
            f"{eligible_from.isoformat()} lies more than {MAX_YEARS_BACK} years back;"
            " is the year right?",
        )
    if (eligible_until - eligible_from).days > MAX_PERIOD_DAYS:
        raise InvalidField(
            "eligible_until", "a grant may last at most five years; grant a new period when it ends"
        )
    latest = today + timedelta(days=MAX_DAYS_AHEAD)
    # Compared without adding the grace days to the end date: that sum overflows near 9999.
    if eligible_until > latest - timedelta(days=grace_days):
        raise InvalidField(
            "eligible_until",
            f"with {grace_days} grace days the grant would last beyond {latest.isoformat()};"
            f" a grant may reach at most {MAX_YEARS_AHEAD} years ahead",
        )


def check_target_group(target_group: str, configured: tuple[str, ...]) -> None:
    if target_group not in configured:
        raise InvalidField(
            "target_group", f"{target_group!r} is not one of {', '.join(configured)}"
        )


def check_can_issue_on(period: Period, today: date) -> None:
    if today > period.last_valid_day:
        raise Conflict(
            f"eligibility: it ended on {period.eligible_until.isoformat()}"
            f" (grace until {period.last_valid_day.isoformat()}); extend it before issuing a card"
        )


def extended(period: Period, new_until: date, today: date) -> Period:
    if new_until <= period.eligible_until:
        raise InvalidField(
            "eligible_until",
            f"an extension must end after the current end date {period.eligible_until.isoformat()}",
        )
    if (new_until - period.eligible_from).days > MAX_PERIOD_DAYS:
        # The five years hold for the whole grant (its evidence is looked at again), so a
        # long-running grant is continued by a new one, not stretched.
        next_day = period.eligible_until + timedelta(days=1)
        raise InvalidField(
            "eligible_until",
            f"the grant runs since {period.eligible_from.isoformat()} and may last at most five"
            f" years; grant a new period from {next_day.isoformat()} instead of extending it",
        )
    check_period(period.eligible_from, new_until, today, period.grace_days)
    return Period(period.eligible_from, new_until, period.grace_days)


def has_ended(period: Period, today: date) -> bool:
    """Past the end date and the grace period: the card expires."""
    return today > period.last_valid_day


def ends_soon(period: Period, today: date, within_days: int) -> bool:
    """Ends within the announcement window (today included) and has not ended yet."""
    return today <= period.eligible_until <= today + timedelta(days=within_days)
