"""The background scheduler: which jobs are due at a moment (pure), and a loop that runs
each due job once per period (recorded in `job_runs`, so restarts and several replicas
do not repeat a period)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from functools import partial

import asyncpg

from services.notifications.jobs import Jobs, NotYet
from services.notifications.messages import BRUSSELS
from shared.db import DbConnection
from shared.logging import get_logger

log = get_logger(__name__)

# The database or the network is away: the jobs after this one would fail the same way, so
# the tick ends here and the next one tries them all again.
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)
# Another replica's scheduler runs the same (job, period): class of the advisory lock.
_RUN_LOCK_CLASS = 7_227_101


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
        ("retention", day),
    ]
    if local.hour >= batch_hour:
        jobs += [("referrer-digests", day), ("letters", day)]
    return jobs


async def claim_period(conn: DbConnection, job: str, period: str) -> bool:
    """Take (job, period) for this run, inside the job's own transaction.

    The `job_runs` row is written in the transaction that does the job's work, so it is
    durable exactly when that work is: a job that fails, a connection that drops or a
    process that dies mid-job leaves no row, and a later tick runs the period again. The
    advisory lock keeps a second replica from waiting on the uncommitted row: it skips
    and finds the row committed (or gone) on a later tick.
    """
    if not await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", _RUN_LOCK_CLASS, f"{job}/{period}"
    ):
        return False
    return bool(
        await conn.fetchval(
            "INSERT INTO job_runs (job, period) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            job,
            period,
        )
    )


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, jobs: Jobs, interval_s: float, batch_hour: int) -> None:
        self.pool = pool
        self.jobs = jobs
        self.interval_s = interval_s
        self.batch_hour = batch_hour

    async def tick(self, now: datetime) -> list[str]:
        """Run the due jobs not yet done for their period; the jobs that ran. A job that
        fails is logged and left undone, to be tried again on the next tick."""
        ran = []
        for job, period in due_jobs(now, self.batch_hour):
            try:
                result = await self.jobs.run(
                    job, now, claim=partial(claim_period, job=job, period=period)
                )
            except NotYet as exc:
                log.info("scheduled job deferred", job=job, period=period, reason=str(exc))
                continue
            except _UNREACHABLE as exc:
                log.warning(
                    "scheduled job failed", job=job, period=period, error=type(exc).__name__
                )
                break
            except Exception as exc:
                # The type only: an exception's text may quote a row (a name, an address).
                log.error("scheduled job failed", job=job, period=period, error=type(exc).__name__)
                continue
            if not result.get("skipped"):
                ran.append(job)
        return ran

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick(datetime.now(UTC))
            except Exception as exc:
                # Whatever happens, the loop goes on: a scheduler that died would stop every
                # job while the service still looks healthy.
                log.error("scheduler tick failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
