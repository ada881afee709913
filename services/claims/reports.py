"""Finance's monthly figures, read from the ledger: net discount cost per payer, per
provider, and budget consumption per budget line. Months are Belgian calendar months of
the booking date; reversals count in the month they are booked."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from services.claims.policy import RefundPolicy
from shared.db import DbConnection
from shared.localtime import LOCAL_TIME


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` → [first instant, first instant of the next month) in Belgian time."""
    year, number = (int(x) for x in month.split("-"))
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return (
        datetime.combine(start, time(), LOCAL_TIME),
        datetime.combine(end, time(), LOCAL_TIME),
    )


def payer_of(cost_account: str) -> tuple[str, str]:
    """(payer, budget line or payer id) of an account a claim's cost is booked on."""
    parts = cost_account.split(":")
    if parts[0] == "expense":
        return "municipality", parts[2]
    if parts[1] == "provider":
        return "provider", parts[2]
    return f"government:{parts[2]}", ""


async def monthly_report(conn: DbConnection, policy: RefundPolicy, month: str) -> dict[str, Any]:
    """The month's figures, all read in one snapshot: claims booked while the report is read
    (the running month always has some) would otherwise count in the figures read after
    them and not in those before, and the totals per payer, per provider and per budget line
    would disagree with each other and with the ledger. (In a caller's transaction, the
    snapshot is the caller's to choose.)"""
    if conn.is_in_transaction():
        return await _monthly_report(conn, policy, month)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _monthly_report(conn, policy, month)


async def _monthly_report(conn: DbConnection, policy: RefundPolicy, month: str) -> dict[str, Any]:
    start, end = month_bounds(month)
    by_account = await conn.fetch(
        """
        SELECT CASE WHEN code = 'claim_approved' THEN debit_account ELSE credit_account END AS account,
               count(*) FILTER (WHERE code = 'claim_approved') AS approved,
               count(*) FILTER (WHERE code = 'claim_reversed') AS reversed,
               sum(CASE WHEN code = 'claim_approved' THEN amount_cents ELSE -amount_cents END) AS net
        FROM transfers
        WHERE code IN ('claim_approved', 'claim_reversed') AND created_at >= $1 AND created_at < $2
        GROUP BY 1 ORDER BY 1
        """,
        start,
        end,
    )
    per_payer: dict[tuple[str, str], dict[str, Any]] = {}
    for r in by_account:
        payer, detail = payer_of(r["account"])
        line = per_payer.setdefault(
            (payer, detail),
            {"payer": payer, "detail": detail, "shares": 0, "reversed": 0, "net_cents": 0},
        )
        line["shares"] += int(r["approved"])
        line["reversed"] += int(r["reversed"])
        line["net_cents"] += int(r["net"])
    providers = await conn.fetch(
        """
        SELECT c.provider_id, coalesce(p.name, '') AS name, coalesce(p.mode, '') AS mode,
               coalesce(p.sub_municipality, '') AS sub_municipality,
               count(DISTINCT c.claim_id) FILTER (WHERE t.code = 'claim_approved') AS claims,
               count(DISTINCT c.claim_id) FILTER (WHERE t.code = 'claim_reversed') AS reversed,
               sum(CASE WHEN t.code = 'claim_approved' THEN t.amount_cents ELSE -t.amount_cents END) AS net
        FROM transfers t JOIN claims c ON c.claim_id = t.claim_id
        LEFT JOIN providers p ON p.provider_id = c.provider_id
        WHERE t.code IN ('claim_approved', 'claim_reversed') AND t.created_at >= $1 AND t.created_at < $2
        GROUP BY 1, 2, 3, 4 ORDER BY 2, 1
        """,
        start,
        end,
    )
    return {
        "month": month,
        "per_payer": list(per_payer.values()),
        "per_provider": [
            {
                "provider_id": str(r["provider_id"]),
                "provider": r["name"],
                "sub_municipality": r["sub_municipality"],
                "mode": r["mode"],
                "claims": int(r["claims"]),
                "reversed": int(r["reversed"]),
                "net_cents": int(r["net"]),
            }
            for r in providers
        ],
        "budget_lines": await budget_consumption(conn, policy, end),
    }


async def budget_consumption(
    conn: DbConnection, policy: RefundPolicy, until: datetime
) -> list[dict[str, Any]]:
    """Per budget line: what the budget year up to `until` consumed, against its budget."""
    last_day = datetime.fromtimestamp(until.timestamp() - 1, LOCAL_TIME).date()
    period = policy.budget_period(last_day)
    first, _ = policy.period_bounds(period)
    since = datetime.combine(first, time(), LOCAL_TIME)
    rows = await conn.fetch(
        """
        SELECT account, sum(amount) AS consumed FROM (
            SELECT debit_account AS account, amount_cents AS amount FROM transfers
            WHERE debit_account LIKE 'expense:discount:%' AND created_at >= $1 AND created_at < $2
            UNION ALL
            SELECT credit_account, -amount_cents FROM transfers
            WHERE credit_account LIKE 'expense:discount:%' AND created_at >= $1 AND created_at < $2
        ) e GROUP BY account ORDER BY account
        """,
        since,
        until,
    )
    version = policy.version_on(last_day) or policy.versions[0]
    consumed = {r["account"].split(":", 2)[2]: int(r["consumed"]) for r in rows}
    lines = sorted(set(consumed) | set(version.budget_lines_cents))
    out = []
    for line in lines:
        budget = version.budget_lines_cents.get(line)
        used = consumed.get(line, 0)
        out.append(
            {
                "budget_line": line,
                "budget_year": period,
                "budget_cents": budget,
                "consumed_cents": used,
                "remaining_cents": None if budget is None else budget - used,
                "consumed_basis_points": None if not budget else basis_points(used, budget),
            }
        )
    return out


def basis_points(part: int, whole: int) -> int:
    """`part` of `whole` in hundredths of a percent, truncated toward zero: a negative
    consumption (a reversal booked in a new budget year) is as far below 0 as the same
    positive one is above (floor division made -0.025 % into -0.03 %)."""
    points = abs(part) * 10_000 // abs(whole)
    return -points if (part < 0) != (whole < 0) else points
