"""The network's and the council's usage figures: how many card holders could use their card
and how many did (take-up, "bereik"), per target group and per sub-municipality of the
holder, and the check-ins per provider, per activity category and per month.

Usage counts when the activity happened (a Belgian calendar period of `occurred_at`), not
when a claim was booked: it is about who took part, not about money (that is finance's
monthly report). Only check-ins that stand count: approved or capped, not reversed.

The report leaves the municipality (a council meeting, the network's annual review), so a
cell that counts fewer than `MIN_CELL` card holders is suppressed (`null`, printed "<5"):
in a small sub-municipality "2 holders with a disability went to the swimming pool" points
at people. In a row about a group of holders (a target group, a sub-municipality) the
check-ins and the amount go with it, since they would tell what those few did; in a row
about a provider, a category or a month only the number of holders is hidden. Take-up is
given where both its counts are shown. A second group is hidden with one that would be
hidden alone (group_rows), or subtraction from the totals would give it away.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import asyncpg

from shared.db import DbConnection
from shared.localtime import LOCAL_TIME

MIN_CELL = 5
UNKNOWN_AREA = "(onbekend)"
_PERIOD = re.compile(r"(\d{4})(?:-(\d{2}))?")


@dataclass(frozen=True)
class Period:
    """A calendar year or month in Belgian time: [first day, first day after)."""

    name: str
    first_day: date
    day_after: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), LOCAL_TIME)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.day_after, time(), LOCAL_TIME)


def period_of(text: str) -> Period:
    """`YYYY` or `YYYY-MM`; ValueError says what is expected."""
    match = _PERIOD.fullmatch(text)
    year = int(match.group(1)) if match else 0
    month = int(match.group(2) or 1) if match else 0
    if not match or not 2000 <= year <= 2999 or not 1 <= month <= 12:
        raise ValueError("expected a year (2026) or a month (2026-03)")
    if match.group(2) is None:
        return Period(text, date(year, 1, 1), date(year + 1, 1, 1))
    return Period(text, date(year, month, 1), date(year + month // 12, month % 12 + 1, 1))


def shown(count: int) -> int | None:
    """A count of card holders as the report may show it: None for 1 to MIN_CELL - 1."""
    return None if 0 < count < MIN_CELL else count


def take_up_basis_points(active: int | None, eligible: int | None) -> int | None:
    """Active holders as hundredths of a percent of eligible ones (rounded down); None when
    either is suppressed or nobody was eligible."""
    if active is None or eligible is None or eligible == 0:
        return None
    return active * 10_000 // eligible


@dataclass(frozen=True)
class Use:
    """What the holders of one row did: check-ins, distinct holders, discount."""

    checkins: int = 0
    holders: int = 0
    discount_cents: int = 0


def group_row(key: Mapping[str, Any], eligible: int, use: Use) -> dict[str, Any]:
    """A row about a group of holders: everything about them hidden when they are few."""
    active, shown_eligible = shown(use.holders), shown(eligible)
    hidden = active is None
    return {
        **key,
        "eligible_holders": shown_eligible,
        "active_holders": active,
        "take_up_basis_points": take_up_basis_points(active, shown_eligible),
        "checkins": None if hidden else use.checkins,
        "discount_cents": None if hidden else use.discount_cents,
    }


def activity_row(key: Mapping[str, Any], use: Use) -> dict[str, Any]:
    """A row about a provider, a category or a month: only the holders' count is hidden."""
    return {
        **key,
        "checkins": use.checkins,
        "active_holders": shown(use.holders),
        "discount_cents": use.discount_cents,
    }


def group_rows(
    name: str, eligible: Mapping[str, int], used: Mapping[str, Use]
) -> list[dict[str, Any]]:
    """One row per group that had eligible holders or check-ins, in name order. The groups
    of a dimension add up to the totals (the check-ins and discount exactly), so one hidden
    row among shown ones could be worked out by subtraction: the smallest shown row is then
    hidden with it (complementary suppression)."""
    rows = [
        group_row({name: group}, eligible.get(group, 0), used.get(group, Use()))
        for group in sorted(set(eligible) | set(used))
    ]
    hidden = [row for row in rows if _hides_something(row)]
    shown_rows = [row for row in rows if not _hides_something(row)]
    if len(hidden) == 1 and shown_rows:
        smallest = min(shown_rows, key=lambda row: (row["eligible_holders"], row["checkins"]))
        smallest.update(dict.fromkeys(_GROUP_FIGURES))
    return rows


_GROUP_FIGURES = (
    "eligible_holders",
    "active_holders",
    "take_up_basis_points",
    "checkins",
    "discount_cents",
)


def _hides_something(row: Mapping[str, Any]) -> bool:
    return any(row[figure] is None for figure in _GROUP_FIGURES if figure != "take_up_basis_points")


# --- reading -------------------------------------------------------------------------------
# Everything is counted in PostgreSQL (a region's year is millions of check-ins: they do not
# come to this process), each dimension one grouping set.

# A holder's sub-municipality: the one on their newest card.
_AREAS = """
areas AS (SELECT DISTINCT ON (holder_id) holder_id, coalesce(sub_municipality, '') AS area
          FROM cards ORDER BY holder_id, issued_at DESC)
"""
# Holders who could use a card some day of the period: a grant (or, for holders from before
# grants were kept, their card's) that reaches into it, its grace days included.
_ELIGIBLE = f"""
WITH grants AS (
    SELECT holder_id, target_group, eligible_from, eligible_until, grace_days FROM holder_grants
    UNION ALL
    SELECT holder_id, target_group, eligible_from, eligible_until, grace_days FROM cards c
    WHERE NOT EXISTS (SELECT 1 FROM holder_grants g WHERE g.holder_id = c.holder_id)
), {_AREAS}
SELECT GROUPING(target_group) = 0 AS per_group, GROUPING(area) = 0 AS per_area,
       target_group, coalesce(area, '') AS area, count(DISTINCT holder_id) AS holders
FROM (SELECT DISTINCT holder_id, target_group FROM grants
      WHERE eligible_from < $2 AND eligible_until + grace_days >= $1) e
LEFT JOIN areas USING (holder_id)
GROUP BY GROUPING SETS ((), (target_group), (area))
"""  # noqa: S608 (built of constants only)
_USE = f"""
WITH {_AREAS}, standing AS (
    SELECT c.holder_id, coalesce(c.target_group, '') AS target_group,
           coalesce(a.area, '') AS area, c.provider_id, c.category, c.amount_cents,
           to_char(c.occurred_at AT TIME ZONE $3, 'YYYY-MM') AS month
    FROM claims c LEFT JOIN areas a USING (holder_id)
    WHERE c.outcome <> 'rejected' AND c.reversed_at IS NULL
      AND c.occurred_at >= $1 AND c.occurred_at < $2
)
SELECT GROUPING(target_group) = 0 AS per_group, GROUPING(area) = 0 AS per_area,
       GROUPING(provider_id) = 0 AS per_provider, GROUPING(category) = 0 AS per_category,
       GROUPING(month) = 0 AS per_month, target_group, area, provider_id, category, month,
       count(*) AS checkins, count(DISTINCT holder_id) AS holders,
       coalesce(sum(amount_cents), 0)::bigint AS discount_cents
FROM standing
GROUP BY GROUPING SETS ((), (target_group), (area), (provider_id), (category), (month))
"""  # noqa: S608 (built of constants only)
_PROVIDERS = "SELECT provider_id, name, sub_municipality FROM providers WHERE provider_id = ANY($1)"
_DIMENSIONS = ("group", "area", "provider", "category", "month")
_COLUMN = {
    "group": "target_group",
    "area": "area",
    "provider": "provider_id",
    "category": "category",
    "month": "month",
}


def _dimension(row: asyncpg.Record) -> tuple[str, Any]:
    """Which grouping set a row is of, and its key in it ("all" for the totals)."""
    for name in _DIMENSIONS:
        if row.get(f"per_{name}"):
            value = row[_COLUMN[name]]
            return name, (value or UNKNOWN_AREA) if name == "area" else value
    return "all", "all"


async def usage_report(conn: DbConnection, period: Period) -> dict[str, Any]:
    """The period's figures, read in one snapshot so that they add up."""
    if conn.is_in_transaction():
        return await _usage_report(conn, period)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _usage_report(conn, period)


async def _usage_report(conn: DbConnection, period: Period) -> dict[str, Any]:
    eligible: dict[str, dict[Any, int]] = {"all": {}, "group": {}, "area": {}}
    for r in await conn.fetch(_ELIGIBLE, period.first_day, period.day_after):
        name, key = _dimension(r)
        eligible[name][key] = r["holders"]
    uses: dict[str, dict[Any, Use]] = {name: {} for name in ("all", *_DIMENSIONS)}
    for r in await conn.fetch(_USE, period.start, period.end, LOCAL_TIME.key):
        name, key = _dimension(r)
        uses[name][key] = Use(r["checkins"], r["holders"], r["discount_cents"])
    providers = {r["provider_id"]: r for r in await conn.fetch(_PROVIDERS, list(uses["provider"]))}

    def provider(provider_id: Any) -> dict[str, Any]:
        known = providers.get(provider_id)
        return {
            "provider_id": str(provider_id),
            "provider": known["name"] if known else str(provider_id),
            "sub_municipality": known["sub_municipality"] if known else "",
        }

    return {
        "period": period.name,
        "first_day": period.first_day.isoformat(),
        "last_day": date.fromordinal(period.day_after.toordinal() - 1).isoformat(),
        "min_cell": MIN_CELL,
        "totals": group_row({}, eligible["all"].get("all", 0), uses["all"].get("all", Use())),
        "per_target_group": group_rows("target_group", eligible["group"], uses["group"]),
        "per_sub_municipality": group_rows("sub_municipality", eligible["area"], uses["area"]),
        "per_provider": [
            activity_row(provider(provider_id), use)
            for provider_id, use in sorted(
                uses["provider"].items(), key=lambda item: (-item[1].checkins, str(item[0]))
            )
        ],
        "per_category": [
            activity_row({"category": category}, use)
            for category, use in sorted(uses["category"].items())
        ],
        "per_month": [
            activity_row({"month": month}, use) for month, use in sorted(uses["month"].items())
        ],
    }
