"""The scheduler loop outlives any failure: a job that raises is logged (its error type, no
text) and tried again on the next tick, and the other jobs of the tick still run."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any, cast

import asyncpg
from structlog.testing import capture_logs

from services.notifications.jobs import Claim, Jobs, NotYet
from services.notifications.schedule import Scheduler, due_jobs

NOON = datetime(2026, 11, 27, 11, tzinfo=UTC)  # 12:00 in Brussels: every job is due


class FakeJobs:
    """Runs nothing; fails as told, per job name, and counts the calls."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        self.calls: list[str] = []

    async def run(
        self,
        name: str,
        now: datetime,
        period: tuple[date, date] | None = None,
        *,
        claim: Claim | None = None,
    ) -> dict[str, Any]:
        self.calls.append(name)
        if name in self.failures:
            raise self.failures[name]
        return {"job": name, "notifications": 0}


def scheduler(jobs: FakeJobs, interval_s: float = 300) -> Scheduler:
    return Scheduler(cast(asyncpg.Pool, None), cast(Jobs, jobs), interval_s, batch_hour=7)


async def test_a_failing_job_is_logged_and_the_others_still_run() -> None:
    jobs = FakeJobs({"unused-cards": KeyError("an.peeters@example.org")})
    with capture_logs() as logs:
        ran = await scheduler(jobs).tick(NOON)
    every = [job for job, _ in due_jobs(NOON, 7)]
    assert jobs.calls == every
    assert ran == [job for job in every if job != "unused-cards"]
    [failed] = [e for e in logs if e["event"] == "scheduled job failed"]
    assert failed["log_level"] == "error"
    assert failed["job"] == "unused-cards" and failed["error"] == "KeyError"
    assert "an.peeters" not in repr(logs)  # the type, never the text


async def test_a_job_not_ready_is_deferred_quietly() -> None:
    jobs = FakeJobs({"provider-statements": NotYet("the period up to 2026-10-31 is not over")})
    with capture_logs() as logs:
        ran = await scheduler(jobs).tick(NOON)
    assert "provider-statements" not in ran and "letters" in ran
    [deferred] = [e for e in logs if e["event"] == "scheduled job deferred"]
    assert deferred["log_level"] == "info"


async def test_an_unreachable_database_ends_the_tick_with_a_warning() -> None:
    jobs = FakeJobs({"silent-devices": ConnectionRefusedError()})
    with capture_logs() as logs:
        assert await scheduler(jobs).tick(NOON) == []
    assert jobs.calls == ["silent-devices"]  # the others would fail alike: next tick
    assert [e["log_level"] for e in logs if e["event"] == "scheduled job failed"] == ["warning"]


async def test_the_loop_survives_any_exception_and_keeps_ticking() -> None:
    jobs = FakeJobs({name: RuntimeError("boom") for name, _ in due_jobs(NOON, 7)})
    broken = scheduler(jobs, interval_s=0.01)
    ticks = 0

    async def tick(now: datetime) -> list[str]:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            raise AttributeError("a bug outside any job")
        return await Scheduler.tick(broken, now)

    broken.tick = tick  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(broken.run(stop))
    with capture_logs() as logs:
        for _ in range(500):
            await asyncio.sleep(0.01)
            if ticks >= 3 or task.done():
                break
        stop.set()
        await asyncio.wait_for(task, 5)
    assert ticks >= 3  # still alive after the tick that raised and the jobs that failed
    tick_failed = [e for e in logs if e["event"] == "scheduler tick failed"]
    assert tick_failed[0]["error"] == "AttributeError" and tick_failed[0]["log_level"] == "error"
    assert [e for e in logs if e["event"] == "scheduled job failed"]
