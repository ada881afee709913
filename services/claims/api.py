"""The claims service's HTTP API: outcomes, the trial balance and account statements,
payment runs on command, and finance's monthly report figures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import SecretStr

from services.claims import ledger, parking, waiting_returns
from services.claims.payments import run_payments
from services.claims.policy import RefundPolicy
from services.claims.reports import monthly_report
from services.claims.usage import period_of, usage_report
from shared.api_auth import protected_router
from shared.consumer import Stall
from shared.db import DbConnection
from shared.http import add_correlation_middleware, health_router
from shared.http_errors import install_error_answers
from shared.localtime import zoned


def build_app(
    pool_ref: Callable[[], asyncpg.Pool],
    policy: RefundPolicy,
    token_secret: SecretStr,
    stalls: Callable[[], Sequence[Stall]] | None = None,
) -> FastAPI:
    """Every route but the health probes needs the operations token: an outcome by check-in
    id would tell a provider which of its visitors has the reduced tariff."""
    app = FastAPI(title="Vrijetijdspas — claims", version="1")
    add_correlation_middleware(app)
    install_error_answers(app)
    app.include_router(health_router(pool_ref, readiness_figures, stalls))
    api = protected_router(token_secret)

    @api.get("/stats")
    async def stats() -> dict[str, Any]:
        """Outcome counts and ledger totals: what the demo and operators look at. `approved`
        counts every approval; the cents are those of the claims that stand, the reversed
        ones (a cancelled check-in) apart."""
        async with (
            pool_ref().acquire() as conn,
            # One snapshot: read one after the other while check-ins went on, the counts
            # and the ledger totals were of different moments and did not add up.
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            outcomes = await conn.fetch(
                "SELECT outcome, coalesce(reason, '') AS reason, count(*) AS n,"
                " coalesce(sum(amount_cents) FILTER (WHERE reversed_at IS NULL), 0)::bigint"
                " AS cents, count(reversed_at) AS reversed,"
                " coalesce(sum(amount_cents) FILTER (WHERE reversed_at IS NOT NULL), 0)::bigint"
                " AS reversed_cents FROM claims GROUP BY 1, 2 ORDER BY 1, 2"
            )
            unauth = await conn.fetch(
                "SELECT reason, count(DISTINCT checkin_id) AS n FROM unauthenticated_checkins"
                " WHERE checkin_id NOT IN (SELECT checkin_id FROM claims) GROUP BY reason"
            )
            payments = await conn.fetch(
                "SELECT status, count(*) AS n, coalesce(sum(amount_cents), 0)::bigint AS cents"
                " FROM payments GROUP BY status"
            )
            debit, credit = await ledger.totals(conn)
            transfers = await conn.fetchval("SELECT count(*) FROM transfers")
            # Claims that moved money, counted in the ledger itself: a duplicate that slipped
            # through would show here as a second transfer for one check-in.
            ledger_claims = await conn.fetchrow(
                "SELECT count(DISTINCT claim_id) AS claims, count(*) AS transfers FROM transfers"
                " WHERE code = 'claim_approved'"
            )
            assert ledger_claims is not None
            known_cards = await conn.fetchval("SELECT count(*) FROM cards")
            known_devices = await conn.fetchval("SELECT count(*) FROM devices")
            parked = await parking.readiness_figures(conn)
            returns = await waiting_returns.figures(conn)
        return {
            "outcomes": [dict(r) for r in outcomes],
            "unauthenticated": [dict(r) for r in unauth],
            "claims": ledger_claims["claims"],
            "claim_transfers": ledger_claims["transfers"],
            "decided": sum(r["n"] for r in outcomes) + sum(r["n"] for r in unauth),
            "approved": sum(r["n"] for r in outcomes if r["outcome"] != "rejected"),
            "rejected": sum(r["n"] for r in outcomes if r["outcome"] == "rejected")
            + sum(r["n"] for r in unauth),
            # What the standing claims refund or reimburse: a reversed claim's transfers
            # are undone in the ledger (cancellations.py), so its cents are counted apart.
            "approved_cents": sum(int(r["cents"]) for r in outcomes),
            "reversed": sum(r["reversed"] for r in outcomes),
            "reversed_cents": sum(int(r["reversed_cents"]) for r in outcomes),
            "payments": [dict(r) for r in payments],
            "ledger_debit_cents": debit,
            "ledger_credit_cents": credit,
            "ledger_transfers": transfers,
            "known_cards": known_cards,
            "known_devices": known_devices,
            # Waiting for a device or a key, and apart for a card (parking.py).
            "checkins_parked": parked["checkins_parked"],
            "checkins_awaiting_card": parked["checkins_awaiting_card"],
            # Payment returns read before their settlement, waiting for it (waiting_returns.py).
            "returns_waiting": returns["returns_waiting"],
        }

    @api.get("/checkins/parked")
    async def parked_checkins() -> dict[str, Any]:
        """Check-ins waiting for their device's registration or key, or for their card's
        (services/claims/parking.py): how many, since when, and per device (the 100
        waiting longest; no card numbers)."""
        async with pool_ref().acquire() as conn:
            return await parking.parked_figures(conn)

    @api.get("/ledger/trial-balance")
    async def trial_balance() -> dict[str, Any]:
        async with pool_ref().acquire() as conn:
            balances = await ledger.trial_balance(conn)
        return {"accounts": balances, "difference_cents": sum(balances.values())}

    @api.get("/ledger/accounts/{account}/statement")
    async def account_statement(
        account: str, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        """An account's entries with a running balance (debits positive). A time without a
        zone is Belgian, as the monthly report's months are."""
        since, until = since and zoned(since), until and zoned(until)
        if since is not None and until is not None and until < since:
            # Swapped by hand, this was an empty statement that looked like a quiet period.
            raise HTTPException(422, f"until ({until.isoformat()}) must come after since")
        async with (
            pool_ref().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # A mistyped account was an empty statement, as of an account nothing happened on.
            if not await conn.fetchval("SELECT 1 FROM accounts WHERE account = $1", account):
                raise HTTPException(404, f"no account {account}: nothing was ever booked on it")
            # One snapshot: the opening balance and the entries after it from the same moment.
            return await ledger.statement(conn, account, since, until)

    @api.get("/payments")
    async def payments(
        # An unknown status ("paid") was an empty list, as if nothing had that status.
        status: str | None = Query(
            default=None, pattern=r"^(requested|settled|failed|returned)$", description="status"
        ),
    ) -> list[dict[str, Any]]:
        async with pool_ref().acquire() as conn:
            rows = await conn.fetch(
                "SELECT payment_id, run_id, payee_kind, payee_id, amount_cents, reference, claims,"
                " status, reason_code, created_at, closed_at FROM payments"
                " WHERE $1::text IS NULL OR status = $1 ORDER BY created_at, payment_id",
                status,
            )
        return [dict(r) for r in rows]

    @api.get("/reports/monthly")
    async def report(
        # Years 2000-2999: year 0 and 9999-12 (whose next month overflows) were 500s.
        month: str = Query(pattern=r"^2\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM"),
    ) -> dict[str, Any]:
        """Net discount cost per payer and per provider, budget consumption per budget line."""
        async with pool_ref().acquire() as conn:
            return await monthly_report(conn, policy, month)

    @api.get("/reports/usage")
    async def usage(
        period: str = Query(description="a year (YYYY) or a month (YYYY-MM)"),
    ) -> dict[str, Any]:
        """Take-up and use for the network and the council: eligible and active card holders
        per target group and sub-municipality, check-ins per provider, category and month;
        counts of fewer than five holders suppressed (usage.py)."""
        try:
            chosen = period_of(period)
        except ValueError as exc:
            raise HTTPException(422, f"period: {exc}") from None
        async with pool_ref().acquire() as conn:
            return await usage_report(conn, chosen)

    @api.post("/payment-runs", status_code=201)
    async def payment_run(request: Request) -> dict[str, Any]:
        async with pool_ref().acquire() as conn:
            return await run_payments(conn, request.state.correlation_id)

    @api.get("/claims/by-checkin/{checkin_id}")
    async def claim_for_checkin(checkin_id: uuid.UUID) -> dict[str, Any]:
        """The check-in's outcome: its claim (with `reversed_at` and `reversal_reason` once its
        provider cancelled it); or, refused before it was judged (bad
        signature, unknown or revoked device, replayed nonce: authentication.py), outcome
        `not_authenticated` with the reason and every message under this id that was
        refused (a genuine one that comes later is still judged: a forgery cannot take its
        id). A 404 says why there is none yet: waiting for its device's registration or
        key, or its card's (parking.py), and since when, or not come (or not judged) yet."""
        async with (
            pool_ref().acquire() as conn,
            # One snapshot: a check-in released and judged between two reads is never
            # "not come yet".
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # With its reversal, if its provider cancelled it (the refund withdrawn).
            row = await conn.fetchrow(
                "SELECT claim_id, checkin_id, outcome, reason, detail, amount_cents, decided_at,"
                " reversed_at, reversal_reason FROM claims WHERE checkin_id = $1",
                checkin_id,
            )
            if row is not None:
                return dict(row)
            waiting = await parking.waiting(conn, checkin_id, parking.keep_for(policy))
            if waiting is not None:
                raise HTTPException(404, waiting)
            refused = await conn.fetch(
                "SELECT event_id, device_id, reason, detail, received_at FROM"
                " unauthenticated_checkins WHERE checkin_id = $1 ORDER BY received_at, event_id",
                checkin_id,
            )
        if not refused:
            raise HTTPException(
                404,
                f"no outcome for check-in {checkin_id}: it has not reached claims or is not"
                " judged yet (a message claims could not read is only in the dead letters)",
            )
        last = refused[-1]
        return {
            "claim_id": None,
            "checkin_id": checkin_id,
            "outcome": "not_authenticated",
            "reason": last["reason"],
            "detail": last["detail"],
            "amount_cents": 0,
            "decided_at": last["received_at"],
            "reversed_at": None,
            "reversal_reason": None,
            "refused": [dict(r) for r in refused],
        }

    app.include_router(api)
    return app


async def readiness_figures(conn: DbConnection) -> dict[str, Any]:
    """What waits in claims, in `GET /health/ready`: parked check-ins (parking.py) and
    payment returns waiting for their settlement (waiting_returns.py)."""
    return {**await parking.readiness_figures(conn), **await waiting_returns.figures(conn)}
