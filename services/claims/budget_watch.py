"""Finance hears when a budget line nears its limit.

Claims owns the budgets (the refund policy's `budget_lines_cents`) and the ledger, so claims
decides and the notifications service only tells. A background job counts the discount cost
booked on each line's ledger account (`expense:discount:<line>`, net of reversals) per budget
year, as finance's report does (reports.py: the Belgian day of the booking decides the budget
year), and announces each threshold a line's total crosses with one BudgetThresholdCrossed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

import asyncpg

from services.claims.background import every
from services.claims.policy import RefundPolicy
from shared import topics
from shared.db import DbConnection
from shared.envelope import new_envelope
from shared.events.claims import BudgetThresholdCrossed
from shared.localtime import LOCAL_TIME, business_day
from shared.logging import get_logger
from shared.outbox import enqueue_events

log = get_logger(__name__)
SOURCE = "/vrijetijdspas/claims"
_DISCOUNT = "expense:discount:"

# A transfer's created_at is the start of the transaction that booked it (DEFAULT now()),
# but other transactions see it only once that one commits. A run that counted up to its own
# start would miss a transfer whose transaction began before that moment and committed after
# the run read the ledger — and the next run starts at the watermark, never looking back. So
# a run counts only transfers created more than MARGIN before it: a claims transaction lasts
# milliseconds (one batch), so by then whatever began before has committed or rolled back.
MARGIN = timedelta(minutes=5)

_COST_PER_DAY = """
SELECT account, (created_at AT TIME ZONE $3::text)::date AS day, sum(amount) AS cents FROM (
    SELECT debit_account AS account, created_at, amount_cents AS amount FROM transfers
    WHERE debit_account LIKE 'expense:discount:%'
      AND ($1::timestamptz IS NULL OR created_at >= $1) AND created_at < $2
    UNION ALL
    SELECT credit_account, created_at, -amount_cents FROM transfers
    WHERE credit_account LIKE 'expense:discount:%'
      AND ($1::timestamptz IS NULL OR created_at >= $1) AND created_at < $2
) cost GROUP BY 1, 2
"""


def thresholds_crossed(
    before_cents: int, after_cents: int, budget_cents: int, thresholds: Iterable[int]
) -> list[int]:
    """The thresholds (percentages of the budget) that consumption reached going from
    `before_cents` to `after_cents`, lowest first; none when it went down.

    Integer arithmetic: 80% of € 1.000,01 is reached at exactly 80.000,8 cents, i.e. when
    100·consumed ≥ 80·budget — no rounding can announce it a cent early."""
    if budget_cents <= 0:
        return []
    return sorted(
        {t for t in thresholds if 100 * before_cents < t * budget_cents <= 100 * after_cents}
    )


def cost_per_budget_year(
    per_day: Iterable[tuple[str, date, int]], policy: RefundPolicy
) -> dict[tuple[str, int], int]:
    """Net cost per (budget line, budget year), from the cost per (line, booking day)."""
    totals: dict[tuple[str, int], int] = {}
    for line, day, cents in per_day:
        key = (line, policy.budget_period(day))
        totals[key] = totals.get(key, 0) + cents
    return {key: cents for key, cents in totals.items() if cents}


def budget_of(policy: RefundPolicy, line: str, year: int, today: date) -> int | None:
    """A line's budget for a budget year: the policy version in force on the year's last
    day, or today while the year runs (finance's report reads it the same way)."""
    last_day = policy.period_bounds(year)[1]
    version = policy.version_on(min(last_day, today)) or policy.versions[0]
    return version.budget_lines_cents.get(line)


async def watch_budgets(
    conn: DbConnection,
    policy: RefundPolicy,
    thresholds: Sequence[int],
    *,
    margin: timedelta = MARGIN,
) -> list[BudgetThresholdCrossed] | None:
    """One run, in one transaction: count the discount cost booked since the last run, and
    announce (through the outbox) each threshold a line crossed for the first time in its
    budget year. None when another claims process is running it at this moment."""
    async with conn.transaction():
        # One row, locked until the commit: another process's run skips instead of waiting
        # and then counting what this run counts.
        progress = await conn.fetchrow(
            "SELECT watermark, now() AS now FROM budget_watch_progress FOR UPDATE SKIP LOCKED"
        )
        if progress is None:
            return None
        since: datetime | None = progress["watermark"]
        until: datetime = progress["now"] - margin
        if since is not None and until <= since:
            return []
        rows = await conn.fetch(_COST_PER_DAY, since, until, LOCAL_TIME.key)
        added = cost_per_budget_year(
            ((r["account"].removeprefix(_DISCOUNT), r["day"], int(r["cents"])) for r in rows),
            policy,
        )
        today = business_day(until)
        crossings = [
            BudgetThresholdCrossed(
                budget_line=line,
                budget_year=year,
                percent=percent,
                consumed_cents=after,
                budget_cents=budget,
                crossed_at=until,
            )
            for (line, year), (before, after) in sorted((await _add(conn, added)).items())
            if (budget := budget_of(policy, line, year, today)) is not None
            for percent in thresholds_crossed(before, after, budget, thresholds)
        ]
        # The first run counts the whole ledger: what it finds crossed in a budget year that
        # is over already is history, recorded but not announced.
        current = policy.budget_period(today)
        news = await _record(
            conn, crossings, [since is not None or c.budget_year >= current for c in crossings]
        )
        await enqueue_events(
            conn,
            [
                (
                    new_envelope(
                        type=topics.BUDGET_THRESHOLD_CROSSED.event_type,
                        source=SOURCE,
                        subject=e.budget_line,
                    ),
                    e,
                )
                for e in news
            ],
        )
        await conn.execute("UPDATE budget_watch_progress SET watermark = $1, ran_at = now()", until)
    for e in news:
        log.info(
            "budget threshold crossed",
            budget_line=e.budget_line,
            budget_year=e.budget_year,
            percent=e.percent,
            consumed_cents=e.consumed_cents,
            budget_cents=e.budget_cents,
        )
    return news


async def _add(
    conn: DbConnection, added: dict[tuple[str, int], int]
) -> dict[tuple[str, int], tuple[int, int]]:
    """Add to the running totals; each (line, year)'s total (before, after)."""
    if not added:
        return {}
    keys = sorted(added)
    rows = await conn.fetch(
        "INSERT INTO budget_line_consumption (budget_line, budget_year, consumed_cents)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
        " ON CONFLICT (budget_line, budget_year) DO UPDATE SET"
        " consumed_cents = budget_line_consumption.consumed_cents + excluded.consumed_cents"
        " RETURNING budget_line, budget_year, consumed_cents",
        [line for line, _ in keys],
        [year for _, year in keys],
        [added[k] for k in keys],
    )
    out = {}
    for r in rows:
        key = (r["budget_line"], r["budget_year"])
        after = int(r["consumed_cents"])
        out[key] = (after - added[key], after)
    return out


async def _record(
    conn: DbConnection,
    crossings: list[BudgetThresholdCrossed],
    announced: list[bool],
) -> list[BudgetThresholdCrossed]:
    """Record the crossings; those recorded now (not before) and to be announced."""
    if not crossings:
        return []
    rows = await conn.fetch(
        "INSERT INTO budget_alerts (budget_line, budget_year, percent, consumed_cents,"
        " budget_cents, crossed_at, announced)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[], $5::bigint[],"
        " $6::timestamptz[], $7::boolean[])"
        # A reversal took the line below a threshold and a claim lifted it over again.
        " ON CONFLICT DO NOTHING"
        " RETURNING budget_line, budget_year, percent, announced",
        [c.budget_line for c in crossings],
        [c.budget_year for c in crossings],
        [c.percent for c in crossings],
        [c.consumed_cents for c in crossings],
        [c.budget_cents for c in crossings],
        [c.crossed_at for c in crossings],
        announced,
    )
    new = {(r["budget_line"], r["budget_year"], r["percent"]) for r in rows if r["announced"]}
    return [c for c in crossings if (c.budget_line, c.budget_year, c.percent) in new]


class BudgetWatch:
    """The background job: a run every `interval_s` seconds (0 or less: never)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        policy: RefundPolicy,
        interval_s: float,
        thresholds: Sequence[int],
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.interval_s = interval_s
        self.thresholds = tuple(thresholds)

    async def run(self, stop: asyncio.Event) -> None:
        await every(
            self.interval_s,
            self.run_once,
            stop,
            failed="budget watch failed, tried again next time",
        )

    async def run_once(self) -> None:
        async with self.pool.acquire() as conn:
            await watch_budgets(conn, self.policy, self.thresholds)
