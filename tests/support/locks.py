"""Races on the real database: that one transaction waits for another's lock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shared.db import DbConnection


async def waits_for_lock(pool: asyncpg.Pool, task: asyncio.Future[Any]) -> bool:
    """True once another backend waits for a lock while `task` runs; False if it ends."""
    async with pool.acquire() as conn:
        for _ in range(250):
            if task.done():
                return False
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                await asyncio.sleep(0.2)  # and it stays blocked
                return not task.done()
            await asyncio.sleep(0.02)
    return False


async def second_waits_for_first(
    pool: asyncpg.Pool,
    first: Callable[[DbConnection], Awaitable[Any]],
    second: Callable[[], Awaitable[Any]],
) -> None:
    """`first` runs in a transaction left open; `second`, started then, must wait for a lock
    until that transaction commits, and then finish."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await first(conn)
        waiting = asyncio.ensure_future(second())
        try:
            assert await waits_for_lock(pool, waiting)
        finally:
            await transaction.commit()
        await asyncio.wait_for(waiting, 10)
