"""HTTP pieces every service API has: health probes and correlation ids on requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shared.ids import uuid7
from shared.logging import get_logger, log_context

log = get_logger(__name__)
CORRELATION_HEADER = "X-Correlation-ID"
_PARKED = "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL"  # index outbox_parked


def health_router(pool: Callable[[], asyncpg.Pool]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/health/ready")
    async def ready() -> Response:
        try:
            async with pool().acquire() as conn:
                parked = await conn.fetchval(_PARKED)
        except Exception as exc:
            return JSONResponse({"status": "not ready", "reason": type(exc).__name__}, 503)
        # Parked outbox rows (records the broker refused for good) do not stop the service;
        # they are counted here for whoever watches it (the rows: README, operators).
        return JSONResponse({"status": "ready", "outbox_parked": parked})

    return router


def add_correlation_middleware(app: FastAPI) -> None:
    """Every request gets a correlation id (the caller's, or a new one) on its log lines and
    on the events it causes; the response echoes it."""

    @app.middleware("http")
    async def correlate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        correlation_id = request.headers.get(CORRELATION_HEADER) or str(uuid7())
        if len(correlation_id) > 100:
            correlation_id = str(uuid7())
        request.state.correlation_id = correlation_id
        with log_context(correlation_id=correlation_id):
            response = await call_next(request)
            if request.method != "GET" or response.status_code >= 400:
                log.info(
                    "http request",
                    method=request.method,
                    path=request.url.path,
                    status=response.status_code,
                )
        response.headers[CORRELATION_HEADER] = correlation_id
        return response
