"""`python -m services.claims`: the claims service process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.claims import parking, waiting_returns
from services.claims.api import build_app
from services.claims.background import every
from services.claims.budget_watch import BudgetWatch
from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from services.claims.payments import apply_settlements, run_payments
from services.claims.policy import load_policy
from services.claims.projections import TOPICS as CARD_TOPICS
from services.claims.projections import apply_card_events
from services.claims.settings import ClaimsSettings
from shared import eventloop, topics
from shared.consumer import BatchProcessor
from shared.events.checkins import MAX_CHECKIN_BYTES
from shared.http import metrics_router
from shared.logging import get_logger
from shared.runtime import HOT_FETCH_WAIT_MS, ServiceRuntime

log = get_logger(__name__)


async def main() -> None:
    settings = ClaimsSettings()
    policy = load_policy(settings.policy_file)  # fail fast on a bad policy file
    runtime = ServiceRuntime.for_service("claims", settings, Path(__file__).parent / "migrations")
    pool = await runtime.open_database()
    runtime.consume(
        BatchProcessor("claims.cards", CARD_TOPICS, apply_card_events, pool),
        group_id=f"{settings.group_id}.cards",
    )
    checkins = CheckInHandler(policy, outcomes=runtime.metrics.checkin_outcomes())
    runtime.consume(
        BatchProcessor(
            "claims.checkins",
            (topics.CHECKIN_RECORDED,),
            checkins,
            pool,
            max_message_bytes=MAX_CHECKIN_BYTES,  # the limit docs/device-protocol.md promises
            prepare=checkins.prepare,
        ),
        group_id=f"{settings.group_id}.checkins",
        max_records=settings.consumer_max_records,
        fetch_wait_ms=HOT_FETCH_WAIT_MS,  # a card holder waits for this answer
    )
    runtime.consume(
        BatchProcessor(
            "claims.cancellations", (topics.CHECKIN_CANCELLED,), CancellationHandler(policy), pool
        ),
        group_id=f"{settings.group_id}.cancellations",
    )
    runtime.consume(
        BatchProcessor(
            waiting_returns.CONSUMER,  # "claims.settlements"
            (topics.PAYMENT_SETTLED, topics.PAYMENT_FAILED, topics.PAYMENT_RETURNED),
            apply_settlements,
            pool,
        ),
        group_id=f"{settings.group_id}.settlements",
    )

    async def payment_run() -> None:
        async with pool.acquire() as conn:
            await run_payments(conn)

    async def scheduled_runs(stop: asyncio.Event) -> None:
        await every(
            settings.payment_run_interval_s,
            payment_run,
            stop,
            failed="scheduled payment run failed",
        )

    budget_watch = BudgetWatch(
        pool, policy, settings.budget_watch_interval_s, settings.budget_thresholds_percent
    )
    app = build_app(lambda: runtime.pool, policy, settings.api_token_secret, runtime.stalls)
    # Behind the operations token, like /stats: outcome counts that move right after a
    # provider's own scan would tell it how that check-in was decided (README, "Metrics").
    app.include_router(
        metrics_router(runtime.metrics, lambda: runtime.pool, settings.api_token_secret)
    )
    await runtime.run(
        app,
        background=[
            scheduled_runs,
            budget_watch.run,
            lambda stop: parking.expire_hourly(pool, parking.keep_for(policy), stop),
            lambda stop: waiting_returns.expire_hourly(pool, stop),
        ],
    )


if __name__ == "__main__":
    eventloop.run(main())
