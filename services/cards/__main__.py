"""`python -m services.cards`: the cards service process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.cards import usage
from services.cards.api import build_app
from services.cards.desk.expiry import expiry_loop
from services.cards.settings import CardsSettings
from shared import eventloop
from shared.consumer import BatchProcessor
from shared.http import metrics_router
from shared.runtime import ServiceRuntime


async def main() -> None:
    settings = CardsSettings()
    runtime = ServiceRuntime.for_service("cards", settings, Path(__file__).parent / "migrations")
    pool = await runtime.open_database()
    runtime.consume(
        BatchProcessor("cards.usage", usage.TOPICS, usage.record_usage, pool),
        group_id="cards.usage",
        max_records=settings.consumer_max_records,
    )
    app = build_app(settings, lambda: runtime.pool, runtime.stalls)
    # Open, like the health probes: cards' figures (its consumer's and outbox's) say
    # nothing about a check-in's outcome (README, "Metrics").
    app.include_router(metrics_router(runtime.metrics, lambda: runtime.pool))

    async def daily_expiry(stop: asyncio.Event) -> None:
        await expiry_loop(runtime.pool, app.state.desk, stop)

    await runtime.run(app, background=[daily_expiry])


if __name__ == "__main__":
    eventloop.run(main())
