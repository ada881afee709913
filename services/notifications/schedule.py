"""The background scheduler: which jobs are due at a moment (pure), and a loop that runs
each due job once per period (recorded in `job_runs`, so restarts and several replicas
do not repeat a period)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg

from services.notifications.jobs import Jobs
from services.notifications.messages import BRUSSELS
from shared.logging import get_logger

log = get_logger(__name__)


def due_jobs(now: datetime, batch_hour: int) -> list[tuple[str, str]]:
    """(job, period) pairs due at `now` (Brussels time decides days and hours)."""
    local = now.astimezone(BRUSSELS)
    day = local.date().isoformat()
    jobs = [
        ("silent-devices", f"{day}T{local.hour:02d}"),
        ("unused-cards", day),
        ("eligibility-ending", day),
        # The statement of last month, from the first day of this month on.
        ("provider-statements", f"{local.year}-{local.month:02d}"),
    ]
    if local.hour >= batch_hour:
        jobs += [("referrer-digests", day), ("letters", day)]
    return jobs


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, jobs: Jobs, interval_s: float, batch_hour: int) -> None:
        self.pool = pool
        self.jobs = jobs
        self.interval_s = interval_s
        self.batch_hour = batch_hour

    async def tick(self, now: datetime) -> list[str]:
        ran = []
        for job, period in due_jobs(now, self.batch_hour):
            async with self.pool.acquire() as conn:
                claimed = await conn.fetchval(
                    "INSERT INTO job_runs (job, period) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    job,
                    period,
                )
            if not claimed:
                continue
            try:
                await self.jobs.run(job, now)
            except BaseException:
                # Not done: release the period so that the next tick tries again.
                async with self.pool.acquire() as conn:
                    await conn.execute(
                        "DELETE FROM job_runs WHERE job = $1 AND period = $2", job, period
                    )
                raise
            ran.append(job)
        return ran

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick(datetime.now(UTC))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("scheduler tick failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
