"""The claims service's periodic jobs (payment runs, the budget watch, expiring parked
check-ins and payment returns that waited in vain) share one loop: each job is one
transaction, so a failed run leaves nothing half-done and the next run simply tries
again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from shared.db import DbConnection
from shared.logging import get_logger

log = get_logger(__name__)


async def every(
    interval_s: float,
    job: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    failed: str,
    at_start: bool = False,
) -> None:
    """Run `job` every `interval_s` seconds until `stop` (0 or less: never), first at start
    or after one interval. A failure is logged as `failed` with the error's type only (its
    text may quote a connection string or a row) and does not end the loop."""
    if interval_s <= 0:
        return
    wait_first = not at_start
    while not stop.is_set():
        if wait_first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            if stop.is_set():
                return
        wait_first = True
        try:
            await job()
        except Exception as exc:
            log.warning(failed, error=type(exc).__name__)


async def hourly_in_transaction(
    pool: asyncpg.Pool,
    job: Callable[[DbConnection], Awaitable[object]],
    stop: asyncio.Event,
    *,
    failed: str,
) -> None:
    """`job` in one transaction once an hour, from start (the expiry of what waited in
    vain); a failure is logged as `failed` and tried again an hour later."""

    async def once() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await job(conn)

    await every(3600, once, stop, failed=failed, at_start=True)
