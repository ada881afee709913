"""HTTP pieces every service API has: health probes, metrics and correlation ids on
requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from shared.api_auth import OperationsToken
from shared.consumer import Stall
from shared.db import DbConnection
from shared.ids import uuid7
from shared.logging import get_logger, log_context
from shared.metrics import CONTENT_TYPE, OutboxFigures, ServiceMetrics

log = get_logger(__name__)
CORRELATION_HEADER = "X-Correlation-ID"
# What waits in the outbox (index outbox_unpublished): parked rows, and the rest with the
# age of the oldest — after a broker outage, how much is still to go out and since when.
_OUTBOX = """
SELECT count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
       count(*) FILTER (WHERE parked_at IS NULL) AS pending,
       extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)) AS oldest_s
FROM outbox WHERE published_at IS NULL
"""


# A service's own figures of what waits (e.g. claims' parked check-ins), merged into the
# readiness answer so that one look (`vtp status`) sees them.
WaitingFigures = Callable[[DbConnection], Awaitable[dict[str, Any]]]


def health_router(
    pool: Callable[[], asyncpg.Pool],
    waiting: WaitingFigures | None = None,
    stalls: Callable[[], Sequence[Stall]] | None = None,
) -> APIRouter:
    """Liveness, and readiness with what waits: unpublished and parked outbox rows, the
    service's own `waiting` figures, and `stalls`, its consumers that get no batch through
    (ServiceRuntime.stalls)."""
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/health/ready")
    async def ready() -> Response:
        try:
            async with pool().acquire() as conn:
                outbox = await conn.fetchrow(_OUTBOX)
                own = await waiting(conn) if waiting is not None else {}
        except Exception as exc:
            return JSONResponse({"status": "not ready", "reason": type(exc).__name__}, 503)
        assert outbox is not None  # an aggregate always returns its one row
        # Neither parked rows (records the broker refused for good) nor a backlog stop the
        # service; they are shown here for whoever watches it (README, operators).
        oldest = outbox["oldest_s"]
        return JSONResponse(
            {
                "status": "ready",
                "outbox_pending": outbox["pending"],
                "outbox_oldest_pending_s": None if oldest is None else round(float(oldest), 1),
                "outbox_parked": outbox["parked"],
                **own,
                **({} if stalls is None else {"consumers_stalled": _stalled(stalls())}),
            }
        )

    return router


# The outbox figures a scrape reads at most this long: a scrape must answer even when the
# database does not (then without them).
METRICS_OUTBOX_TIMEOUT_S = 2.0


def metrics_router(
    metrics: ServiceMetrics,
    pool: Callable[[], asyncpg.Pool],
    operations_token: SecretStr | None = None,
) -> APIRouter:
    """`GET /metrics`: the process's metrics in Prometheus' text format. The outbox backlog
    is read here, at scrape time (the readiness query, one round trip per scrape), never
    by the relay or a consumer. With `operations_token`, only for the bearer of that
    token (claims, notifications: README, "Metrics")."""
    guard = [] if operations_token is None else [Depends(OperationsToken(operations_token))]
    router = APIRouter(tags=["metrics"], dependencies=guard)

    @router.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        try:
            async with asyncio.timeout(METRICS_OUTBOX_TIMEOUT_S):
                async with pool().acquire() as conn:
                    outbox = await conn.fetchrow(_OUTBOX)
            assert outbox is not None  # an aggregate always returns its one row
            oldest = outbox["oldest_s"]
            metrics.outbox.figures = OutboxFigures(
                outbox["pending"], outbox["parked"], None if oldest is None else float(oldest)
            )
        except Exception:  # the rest is still worth having; readiness says what is wrong
            metrics.outbox.figures = None
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return router


def _stalled(stalls: Sequence[Stall]) -> list[dict[str, Any]]:
    return [
        {"consumer": s.consumer, "stalled_s": round(s.seconds, 1), "error": s.error} for s in stalls
    ]


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
