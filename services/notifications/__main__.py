"""`python -m services.notifications`: the notifications service process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.notifications.delivery import DeliveryWorker
from services.notifications.routing import TOPICS, route
from services.notifications.settings import NotificationsSettings
from shared.consumer import BatchProcessor
from shared.http import add_correlation_middleware, health_router
from shared.logging import configure_logging
from shared.runtime import ServiceRuntime


async def main() -> None:
    settings = NotificationsSettings()
    configure_logging("notifications", settings.log_level)
    runtime = ServiceRuntime(
        name="notifications",
        bootstrap_servers=settings.kafka_bootstrap_servers,
        database_url=settings.database_url,
        migrations=Path(__file__).parent / "migrations",
        http_host=settings.http_host,
        http_port=settings.http_port,
    )
    pool = await runtime.open_database()
    runtime.consume(BatchProcessor("notifications", TOPICS, route, pool), group_id="notifications")
    worker = DeliveryWorker(pool, settings)

    app = FastAPI(title="Vrijetijdspas — notifications", version="1")
    add_correlation_middleware(app)
    app.include_router(health_router(lambda: runtime.pool))

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kind, channel, status, count(*) AS n FROM deliveries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        return {
            "deliveries": [dict(r) for r in rows],
            "sent": sum(r["n"] for r in rows if r["status"] == "sent"),
            "pending": sum(r["n"] for r in rows if r["status"] == "pending"),
            "dead": sum(r["n"] for r in rows if r["status"] == "dead"),
        }

    @app.get("/deliveries")
    async def deliveries(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT delivery_id, kind, recipient, channel, status, attempts, last_error,"
                " created_at, sent_at FROM deliveries WHERE ($1::text IS NULL OR status = $1)"
                " ORDER BY created_at DESC LIMIT $2",
                status,
                min(limit, 1000),
            )
        return [dict(r) for r in rows]

    await runtime.run(app, background=[worker.run])


if __name__ == "__main__":
    asyncio.run(main())
