"""`python -m services.notifications`: the notifications service process."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.notifications.api import notifications_router
from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.routing import TOPICS, Router
from services.notifications.schedule import Scheduler
from services.notifications.settings import NotificationsSettings
from shared import eventloop
from shared.consumer import BatchProcessor
from shared.http import add_correlation_middleware, health_router, metrics_router
from shared.http_errors import install_error_answers
from shared.runtime import ServiceRuntime


async def main() -> None:
    settings = NotificationsSettings()
    runtime = ServiceRuntime.for_service(
        "notifications", settings, Path(__file__).parent / "migrations"
    )
    pool = await runtime.open_database()
    runtime.consume(
        BatchProcessor("notifications", TOPICS, Router(settings), pool),
        group_id="notifications",
        max_records=settings.consumer_max_records,
    )
    worker = DeliveryWorker(pool, settings, deliveries=runtime.metrics.deliveries())
    jobs = Jobs(pool, settings)
    scheduler = Scheduler(pool, jobs, settings.scheduler_interval_s, settings.daily_batch_hour)

    app = FastAPI(title="Vrijetijdspas — notifications", version="1")
    add_correlation_middleware(app)
    install_error_answers(app)
    app.include_router(health_router(lambda: runtime.pool, stalls=runtime.stalls))
    # Behind the operations token, like every route of its but the health probes.
    app.include_router(
        metrics_router(runtime.metrics, lambda: runtime.pool, settings.api_token_secret)
    )
    app.include_router(
        notifications_router(
            lambda: runtime.pool, lambda: jobs, settings.api_token_secret, settings.private_key
        )
    )

    await runtime.run(app, background=[worker.run, scheduler.run])


if __name__ == "__main__":
    eventloop.run(main())
