"""The municipality's clock. Days (budget years, "once per day", a grant's last day, a card's
expiry, a monthly statement) are Belgian days, not UTC days: a check-in at 00:30 in Heist is
on the day people remember it, and a referrer at the desk at 01:00 works on today, not on
yesterday. Containers run in UTC, so nothing may ask the system clock for "today"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TIME = ZoneInfo("Europe/Brussels")
# The months as the municipality writes them (letters, statements, reports).
DUTCH_MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def business_day(at: datetime) -> date:
    return at.astimezone(LOCAL_TIME).date()


def zoned(at: datetime) -> datetime:
    """A time a person gave: without a zone it is the municipality's local time (a naive
    time would otherwise be taken as UTC, an hour or two off)."""
    return at.replace(tzinfo=LOCAL_TIME) if at.tzinfo is None else at


def today() -> date:
    return business_day(datetime.now(LOCAL_TIME))


def until_next_day(now: datetime, after: timedelta = timedelta()) -> timedelta:
    """How long from `now` until `after` past the next local midnight (DST-aware: the
    local day may have 23 or 25 hours)."""
    tomorrow = business_day(now) + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=LOCAL_TIME)
    # In UTC: Python subtracts two times of one zone as wall-clock times, which is an hour
    # off across a DST change.
    return (midnight + after).astimezone(UTC) - now.astimezone(UTC)
